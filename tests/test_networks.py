"""`vision.networks`: the exact-padding MobileNetV2 (`mobilenet_v2_keras`) pads as Keras does, and is
served through both backends like the default network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.export import export_onnx, load_checkpoint, save_checkpoint
from vision.classifier import ClassifierInfo, MaskClassifier
from vision.labels import LABELS
from vision.networks import KerasInput, KerasPaddedConv2d, build_network


def test_every_stride_two_convolution_pads_bottom_right_only() -> None:
    network = build_network("mobilenet_v2_keras", 3).eval()
    assert isinstance(network.get_submodule("0"), KerasInput)
    strided = [m for m in network.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    # MobileNetV2: the stem and four depthwise convolutions halve the size.
    assert len(strided) == 5 and all(
        isinstance(m, KerasPaddedConv2d) and m.padding == (0, 0) for m in strided
    )
    conv = strided[0]
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours = conv(x)
        keras = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
        torchvision = nn.functional.conv2d(x, conv.weight, stride=2, padding=1)
    torch.testing.assert_close(ours, keras)
    assert (ours - torchvision).abs().max() > 1e-3
    assert network(torch.rand(2, 3, 128, 128)).shape == (2, 3)


def test_the_exact_network_is_served_by_both_backends_alike(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = build_network("mobilenet_v2_keras", 3).eval()
    with torch.no_grad():
        head = network.get_submodule("1.classifier.1")
        assert isinstance(head, nn.Linear)
        head.bias.copy_(torch.tensor([2.0, -1.0, 0.5]))
    info = ClassifierInfo(arch="mobilenet_v2_keras", labels=tuple(LABELS), input_size=64, margin=0.15)
    save_checkpoint(network, info, tmp_path / "m.pt")
    export_onnx(network, info, tmp_path / "m.onnx")
    reloaded, reloaded_info = load_checkpoint(tmp_path / "m.pt")
    assert reloaded_info.arch == "mobilenet_v2_keras"
    assert any(isinstance(m, KerasPaddedConv2d) for m in reloaded.modules())
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [(10, 10, 70, 80), (80, 20, 150, 100)]
    by_torch = MaskClassifier(tmp_path / "m.pt").predict_boxes(image, boxes)
    by_onnx = MaskClassifier(tmp_path / "m.onnx").predict_boxes(image, boxes)
    np.testing.assert_allclose(by_torch, by_onnx, atol=1e-4)
