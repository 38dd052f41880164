"""The three mask classes, their aliases in the datasets, and how they are shown."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LABELS: tuple[str, ...] = ("with_mask", "without_mask", "mask_worn_incorrectly")

# The scene datasets name the third class differently; both mean a mask below the nose or chin.
_ALIASES: dict[str, str] = {
    "mask_weared_incorrect": "mask_worn_incorrectly",
    "with_incorrect_mask": "mask_worn_incorrectly",
    "mask_worn_incorrectly": "mask_worn_incorrectly",
    "with_mask": "with_mask",
    "without_mask": "without_mask",
}

# BGR, as OpenCV draws: green, red, orange.
LABEL_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "with_mask": (60, 200, 60),
    "without_mask": (40, 40, 230),
    "mask_worn_incorrectly": (0, 150, 255),
}

SHORT_TEXT: dict[str, str] = {
    "with_mask": "With mask",
    "without_mask": "No mask",
    "mask_worn_incorrectly": "Worn incorrectly",
}

LABEL_VERDICTS: dict[str, str] = {
    "without_mask": "unmasked",
    "mask_worn_incorrectly": "incorrect",
    "with_mask": "masked",
}
"""What the page and the kiosk say of a scene by its most urgent face's label, the most urgent first:
someone without a mask, then a mask below the nose, then everyone masked."""


def canonical_label(name: str) -> str:
    """Map a dataset's class name to one of LABELS; raise ValueError for anything else."""
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown mask label {name!r}; expected one of {sorted(_ALIASES)}")
    return _ALIASES[key]


def is_compliant(label: str) -> bool:
    """Binary view used at an entrance: only a mask worn properly is compliant."""
    return label == "with_mask"


def best_label(probabilities: np.ndarray, labels: Sequence[str]) -> tuple[str, float]:
    """The most probable of ``labels`` for one face, and its probability: how every caller turns the
    classifier's output into a verdict."""
    best = int(np.argmax(probabilities))
    return labels[best], float(probabilities[best])
