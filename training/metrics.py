"""Classification figures shared by training and the comparison: accuracy, macro-F1, binary accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np

from vision.labels import LABELS, is_compliant


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int = len(LABELS)) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the truth or the predictions (as scikit-learn does)."""
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    if not present.any():
        return 0.0
    true_positive = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)
    f1 = np.divide(2.0 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return float(f1[present].mean())


def classification_report(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Counts, 3-class accuracy, macro-F1, binary (compliant vs not) accuracy and the confusion matrix."""
    matrix = confusion_matrix(truth, predicted)
    compliant = np.array([is_compliant(label) for label in LABELS])
    count = int(matrix.sum())
    return {
        "crops": count,
        "accuracy": float(np.trace(matrix) / count) if count else 0.0,
        "macro_f1": macro_f1(matrix),
        "binary_accuracy": float((compliant[truth] == compliant[predicted]).mean()) if count else 0.0,
        "confusion": {
            true_label: {pred_label: int(matrix[i, j]) for j, pred_label in enumerate(LABELS)}
            for i, true_label in enumerate(LABELS)
        },
    }
