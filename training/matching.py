"""Matching predicted face boxes to annotated ones, and the metrics computed from the matches.

Greedy matching by IoU, highest pair first, each box used at most once: the usual detection-benchmark
rule. It is kept apart from the evaluation command so that tests can check it on hand-written boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.boxes import iou
from vision.labels import LABELS, is_compliant

FloatBox = tuple[float, float, float, float]


def float_box(box: Sequence[float]) -> FloatBox:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def greedy_match(
    truths: Sequence[Sequence[float]], predictions: Sequence[Sequence[float]], min_iou: float
) -> list[tuple[int, int]]:
    """Pairs (truth index, prediction index) with IoU >= min_iou, best pairs first, one-to-one."""
    candidates = [
        (overlap, t, p)
        for t, truth in enumerate(truths)
        for p, prediction in enumerate(predictions)
        if (overlap := iou(truth, prediction)) >= min_iou
    ]
    candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
    used_truths: set[int] = set()
    used_predictions: set[int] = set()
    pairs = []
    for _, t, p in candidates:
        if t in used_truths or p in used_predictions:
            continue
        used_truths.add(t)
        used_predictions.add(p)
        pairs.append((t, p))
    return sorted(pairs)


SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<20px", 0.0, 20.0),
    ("20-40px", 20.0, 40.0),
    (">=40px", 40.0, float("inf")),
)
# The bands a camera at an entrance sees: a person 2-4 m from a 640x480 camera, 1-2 m, and close up.
SIZE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("40-80", 40.0, 80.0),
    ("80-160", 80.0, 160.0),
    ("160+", 160.0, float("inf")),
)
MIN_SIDE = 40.0
"""Faces with a shorter side than this are not what the product promises to find (``recall_40px``)."""


@dataclass(frozen=True)
class TruthOutcome:
    """One annotated face: its label and size, whether a prediction matched it, and with what label."""

    label: str
    side: float
    predicted: str | None

    @property
    def found(self) -> bool:
        return self.predicted is not None

    @property
    def right_binary(self) -> bool:
        return self.predicted is not None and is_compliant(self.predicted) == is_compliant(self.label)


@dataclass
class Tally:
    """Running counts over images: which annotated faces were found, and the labels of matched faces."""

    predictions: int = 0

    def __post_init__(self) -> None:
        self.truths: list[TruthOutcome] = []
        self.matched_ious: list[float] = []
        self.confusion: dict[str, dict[str, int]] = {t: dict.fromkeys(LABELS, 0) for t in LABELS}

    def add_image(
        self,
        truths: Sequence[tuple[str, FloatBox]],
        predictions: Sequence[tuple[str, FloatBox]],
        min_iou: float,
    ) -> list[tuple[int, int]]:
        """Count one image's faces; returns the matched (truth, prediction) index pairs."""
        pairs = greedy_match([box for _, box in truths], [box for _, box in predictions], min_iou)
        matched = dict(pairs)
        self.predictions += len(predictions)
        for index, (label, box) in enumerate(truths):
            p = matched.get(index)
            self.truths.append(TruthOutcome(label, short_side(box), None if p is None else predictions[p][0]))
        for t, p in pairs:
            self.confusion[truths[t][0]][predictions[p][0]] += 1
            self.matched_ious.append(iou(truths[t][1], predictions[p][1]))
        return pairs

    def detection_metrics(self) -> dict[str, float | None]:
        """Recall over annotated faces (all, and those with short side >= 40 px) and precision."""
        matched = sum(truth.found for truth in self.truths)
        metrics: dict[str, float | None] = {
            "recall": _ratio(matched, len(self.truths)),
            "precision": _ratio(matched, self.predictions),
            "recall_40px": self.recall_between(MIN_SIDE, float("inf")),
        }
        for name, low, high in SIZE_BUCKETS:
            metrics[f"recall_{name}"] = self.recall_between(low, high)
        return metrics

    def detail_metrics(self) -> dict[str, object]:
        """Recall by size band and by class (faces >= 40 px), the share of faces >= 40 px found AND
        classified right (binary), and the mean IoU of matched boxes."""
        large = [truth for truth in self.truths if truth.side >= MIN_SIDE]
        by_class = {
            label: _ratio(
                sum(t.found for t in large if t.label == label), sum(t.label == label for t in large)
            )
            for label in LABELS
        }
        return {
            "recall_by_size": {name: self.recall_between(low, high) for name, low, high in SIZE_BANDS},
            "recall_by_class": by_class,
            "found_and_right_40px": _ratio(sum(t.right_binary for t in large), len(large)),
            "matched_iou": round(float(np.mean(self.matched_ious)), 4) if self.matched_ious else None,
        }

    def recall_between(self, low: float, high: float) -> float | None:
        found = [truth.found for truth in self.truths if low <= truth.side < high]
        return _ratio(sum(found), len(found))

    def size_counts(self) -> dict[str, int]:
        return {
            name: sum(low <= truth.side < high for truth in self.truths) for name, low, high in SIZE_BUCKETS
        }


def short_side(box: Sequence[float]) -> float:
    return min(box[2] - box[0], box[3] - box[1])


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def classification_metrics(confusion: dict[str, dict[str, int]]) -> dict[str, float | None]:
    """3-class accuracy, macro-F1, binary accuracy and per-class F1 of a confusion table.

    Binary: compliant (with_mask) against violation (the other two), the decision an entrance makes.
    Macro-F1 is ``training.metrics.macro_f1`` (the mean over the classes that occur in the truth or
    the predictions, as scikit-learn does), the same function training reports with. A class that
    occurs in neither has no F1 (None).
    """
    from training.metrics import macro_f1

    matrix = np.array([[confusion[t][p] for p in LABELS] for t in LABELS], dtype=np.int64)
    total = int(matrix.sum())
    compliant = np.array([is_compliant(label) for label in LABELS])
    binary_correct = int(
        sum(
            matrix[t, p]
            for t in range(len(LABELS))
            for p in range(len(LABELS))
            if compliant[t] == compliant[p]
        )
    )
    per_class: dict[str, float | None] = {}
    for index, label in enumerate(LABELS):
        occurrences = int(matrix[index, :].sum() + matrix[:, index].sum())
        per_class[f"f1_{label}"] = 2 * int(matrix[index, index]) / occurrences if occurrences else None
    return {
        "classified": total,
        "accuracy_3class": _ratio(int(np.trace(matrix)), total),
        "macro_f1": macro_f1(matrix) if total else None,
        "accuracy_binary": _ratio(binary_correct, total),
        **per_class,
    }
