"""Classifier architectures (torchvision, trained from scratch) with normalisation built in."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

ARCHITECTURES: tuple[str, ...] = ("mobilenet_v2", "resnet101")

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


def build_network(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier taking float NCHW RGB in [0, 1] and returning logits."""
    if arch == "mobilenet_v2":
        backbone: nn.Module = models.mobilenet_v2(weights=None, num_classes=num_classes)
    elif arch == "resnet101":
        backbone = models.resnet101(weights=None, num_classes=num_classes)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    return nn.Sequential(Normalise(), backbone)
