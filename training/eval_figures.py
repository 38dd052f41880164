"""Figures of an evaluation report: the confusion matrix and a contact sheet of misclassified crops."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.classifier import MaskClassifier
from vision.image_files import read_image
from vision.labels import LABEL_COLOURS_BGR, LABELS, SHORT_TEXT

SHEET_COLUMNS = 10
SHEET_TILE = 128
SHEET_MAX_TILES = 100
_CAPTION_HEIGHT = 34


def save_confusion_png(confusion: dict[str, dict[str, int]], path: Path, title: str) -> None:
    """Counts with each row's share as the colour, so rare classes are as readable as common ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array([[confusion[t][p] for p in LABELS] for t in LABELS], dtype=np.float64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    figure, axes = plt.subplots(figsize=(5.6, 4.8), dpi=120)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    names = [SHORT_TEXT[label] for label in LABELS]
    axes.set_xticks(range(len(LABELS)), names)
    axes.set_yticks(range(len(LABELS)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row in range(len(LABELS)):
        for column in range(len(LABELS)):
            colour = "white" if shares[row, column] > 0.6 else "black"
            text = f"{int(counts[row, column])}\n{100 * shares[row, column]:.1f}%"
            axes.text(column, row, text, ha="center", va="center", color=colour, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def error_tile(image: np.ndarray, entry: dict[str, Any], classifier: MaskClassifier) -> np.ndarray:
    """The crop the classifier saw, with the true and predicted label below it."""
    from training.data import face_image_box

    box = entry.get("predicted_box") or entry.get("box") or face_image_box(image, classifier.info.margin)
    crop = cv2.resize(classifier.crop(image, tuple(box)), (SHEET_TILE, SHEET_TILE))
    caption = np.full((_CAPTION_HEIGHT, SHEET_TILE, 3), 255, dtype=np.uint8)
    true_text = f"true {SHORT_TEXT[entry['true']]}"
    predicted_text = f"got {SHORT_TEXT[entry['predicted']]} {100 * entry['score']:.0f}%"
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(caption, true_text, (3, 13), font, 0.4, LABEL_COLOURS_BGR[entry["true"]], 1, cv2.LINE_AA)
    cv2.putText(
        caption, predicted_text, (3, 29), font, 0.4, LABEL_COLOURS_BGR[entry["predicted"]], 1, cv2.LINE_AA
    )
    return np.vstack([crop, caption])


def save_contact_sheet(
    entries: Sequence[dict[str, Any]], root: Path, classifier: MaskClassifier, path: Path, title: str
) -> None:
    """Up to SHEET_MAX_TILES misclassified crops, most confident errors first."""
    chosen = sorted(entries, key=lambda entry: -entry["score"])[:SHEET_MAX_TILES]
    tiles = [error_tile(read_image(root / entry["image"]), entry, classifier) for entry in chosen]
    tile_height = SHEET_TILE + _CAPTION_HEIGHT
    rows = max(1, -(-len(tiles) // SHEET_COLUMNS))
    header = 30
    sheet = np.full((header + rows * tile_height, SHEET_COLUMNS * SHEET_TILE, 3), 255, dtype=np.uint8)
    heading = f"{title}: {len(entries)} misclassified, {len(chosen)} shown, most confident first"
    cv2.putText(sheet, heading, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, SHEET_COLUMNS)
        top, left = header + row * tile_height, column * SHEET_TILE
        sheet[top : top + tile_height, left : left + SHEET_TILE] = tile
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {path}")
