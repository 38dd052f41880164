"""Annotation drawn into the video: an outline box and a label with score per face, or, where the viewer's
language cannot be drawn (OpenCV's fonts have no Hangul), a symbol in the label's colour: the page then
names the class, with the same name as everywhere else (static/js/texts.js)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vision.labels import LABEL_COLOURS_BGR, SHORT_TEXT
from vision.pipeline import Detection

_FONT = cv2.FONT_HERSHEY_SIMPLEX


# Symbols in a unit square (y down), white on the label's colour: a tick, a cross, an exclamation mark.
_SYMBOLS: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "with_mask": (((0.2, 0.55), (0.42, 0.78), (0.82, 0.25)),),
    "without_mask": (((0.25, 0.25), (0.75, 0.75)), ((0.75, 0.25), (0.25, 0.75))),
    "mask_worn_incorrectly": (((0.5, 0.18), (0.5, 0.6)), ((0.5, 0.78), (0.5, 0.8))),
}


def draw_detections(frame: np.ndarray, detections: Sequence[Detection], with_text: bool = True) -> np.ndarray:
    """Draw every detection onto the BGR frame in place and return it; without text, a symbol per face."""
    height, width = frame.shape[:2]
    thickness = max(2, round(min(width, height) / 240))
    font_scale = max(0.4, min(width, height) / 800)
    for detection in detections:
        colour = LABEL_COLOURS_BGR[detection.label]
        x0, y0, x1, y1 = detection.box
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thickness)
        if not with_text:
            _draw_symbol(frame, detection, colour, round(28 * font_scale / 0.6))
            continue
        text = f"{SHORT_TEXT[detection.label]} {detection.score * 100:.0f}%"
        (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, 1)
        top = y0 - text_h - baseline - 4 if y0 - text_h - baseline - 4 >= 0 else y1
        left = min(max(x0, 0), max(width - text_w - 4, 0))
        cv2.rectangle(
            frame, (left, top), (left + text_w + 4, top + text_h + baseline + 4), colour, cv2.FILLED
        )
        cv2.putText(
            frame, text, (left + 2, top + text_h + 2), _FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return frame


def _draw_symbol(frame: np.ndarray, detection: Detection, colour: tuple[int, int, int], side: int) -> None:
    """A filled square of the label's colour above the box (inside it at the top edge) with its symbol."""
    height, width = frame.shape[:2]
    x0, y0, _, y1 = detection.box
    top = y0 - side if y0 - side >= 0 else y1
    left = min(max(x0, 0), max(width - side, 0))
    top = min(max(top, 0), max(height - side, 0))
    cv2.rectangle(frame, (left, top), (left + side, top + side), colour, cv2.FILLED)
    stroke = max(2, side // 8)
    for line in _SYMBOLS.get(detection.label, ()):
        points = np.array([(left + x * side, top + y * side) for x, y in line], dtype=np.int32)
        cv2.polylines(frame, [points], False, (255, 255, 255), stroke, cv2.LINE_AA)
