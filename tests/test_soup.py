"""`training.soup`: the weighted mean of two classifiers' weights, checked key by key, and a real model
made from two real checkpoints that classifies like both when they are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.export import load_checkpoint, save_checkpoint
from training.soup import average_state, main
from vision.classifier import ClassifierInfo, MaskClassifier
from vision.labels import LABELS
from vision.networks import build_network


def test_average_is_weighted_and_keeps_counters() -> None:
    first = {"w": torch.zeros(2, 2), "n": torch.tensor(5)}
    second = {"w": torch.ones(2, 2) * 4, "n": torch.tensor(9)}
    averaged = average_state(first, second, 0.25)
    assert torch.allclose(averaged["w"], torch.ones(2, 2))
    assert int(averaged["n"]) == 9
    assert torch.equal(average_state(first, second, 0.0)["w"], first["w"])


def test_mismatched_models_are_refused() -> None:
    with pytest.raises(ValueError, match="different layers"):
        average_state({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        average_state({"a": torch.zeros(1)}, {"a": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match="weight"):
        average_state({"a": torch.zeros(1)}, {"a": torch.zeros(1)}, 1.5)


def test_the_soup_of_a_model_with_itself_is_that_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    info = ClassifierInfo(arch="mobilenet_v2", labels=tuple(LABELS), input_size=64, margin=0.15)
    network = build_network("mobilenet_v2", len(LABELS)).eval()
    source = tmp_path / "a.pt"
    save_checkpoint(network, info, source)
    main([str(source), str(source), "--weight", "0.3", "--out", str(tmp_path / "soup.pt")])
    soup, soup_info = load_checkpoint(tmp_path / "soup.pt")
    assert soup_info == info
    for key, value in network.state_dict().items():
        assert torch.allclose(soup.state_dict()[key].float(), value.float(), atol=1e-6), key
    image = np.random.default_rng(1).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    box = (8, 8, 72, 72)
    expected = MaskClassifier(source).predict_boxes(image, [box])
    got = MaskClassifier(tmp_path / "soup.onnx").predict_boxes(image, [box])
    assert np.allclose(expected, got, atol=1e-4)
