"""Classifier architectures (torchvision, trained from scratch) with normalisation built in."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

ARCHITECTURES: tuple[str, ...] = ("mobilenet_v2", "resnet101")
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
    elif arch == "resnet101":
        backbone = models.resnet101(weights=None, num_classes=num_classes)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    return nn.Sequential(Normalise(), backbone)
