"""`training.ensemble`: two different classifiers joined into one model whose probabilities are the mean
of theirs, through both backends, and members that cannot be joined refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from training.ensemble import EnsembleError, join, main
from training.export import load_checkpoint, save_checkpoint
from vision.classifier import ClassifierInfo, MaskClassifier
from vision.labels import LABELS
from vision.networks import Ensemble, build_network

INFO = ClassifierInfo(arch="mobilenet_v2", labels=tuple(LABELS), input_size=64, margin=0.15)


def _member(tmp_path: Path, name: str, seed: int, info: ClassifierInfo = INFO) -> Path:
    torch.manual_seed(seed)
    network = build_network(info.arch, len(info.labels)).eval()
    # Untrained networks answer almost uniformly; a large final bias makes each member's answer its own.
    with torch.no_grad():
        head = network.get_submodule("1.classifier.1")
        assert isinstance(head, torch.nn.Linear)
        head.bias.copy_(torch.randn(len(info.labels)) * 3.0)
    path = tmp_path / f"{name}.pt"
    save_checkpoint(network, info, path)
    return path


def test_the_ensemble_answers_the_mean_of_its_members(tmp_path: Path) -> None:
    first, second = _member(tmp_path, "a", 0), _member(tmp_path, "b", 1)
    main([str(first), str(second), "--out", str(tmp_path / "ensemble.pt")])
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [(10, 10, 70, 80), (80, 20, 150, 100)]
    a = MaskClassifier(first).predict_boxes(image, boxes)
    b = MaskClassifier(second).predict_boxes(image, boxes)
    assert not np.allclose(a, b, atol=0.05), "the members must differ for the test to mean anything"
    for suffix in (".pt", ".onnx"):
        ensemble = MaskClassifier(tmp_path / f"ensemble{suffix}")
        assert ensemble.info.arch == "mobilenet_v2+mobilenet_v2"
        assert ensemble.info.input_size == 64 and ensemble.labels == tuple(LABELS)
        got = ensemble.predict_boxes(image, boxes)
        # Flip averaging of the mean is the mean of the flip averages.
        assert np.allclose(got, (a + b) / 2.0, atol=1e-4), suffix
        assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    network, info = load_checkpoint(tmp_path / "ensemble.pt")
    assert isinstance(network, Ensemble) and len(network.members) == 2
    assert info == dataclasses.replace(INFO, arch="mobilenet_v2+mobilenet_v2")


def test_members_that_cannot_be_averaged_are_refused(tmp_path: Path) -> None:
    first = load_checkpoint(_member(tmp_path, "a", 0))
    other_size = load_checkpoint(_member(tmp_path, "b", 1, dataclasses.replace(INFO, input_size=96)))
    with pytest.raises(EnsembleError, match="input size"):
        join([first, other_size])
    with pytest.raises(EnsembleError, match="at least two"):
        join([first])
    main([str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "--out", str(tmp_path / "double.pt")])
    with pytest.raises(EnsembleError, match="ensemble already"):
        join([first, load_checkpoint(tmp_path / "double.pt")])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "bad.pt")])
    assert not (tmp_path / "bad.pt").exists()
