"""Annotation drawn into the video: an outline box and a short label with score per face."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vision.labels import LABEL_COLOURS_BGR, SHORT_TEXT
from vision.pipeline import Detection

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_detections(frame: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """Draw every detection onto the BGR frame in place and return it."""
    height, width = frame.shape[:2]
    thickness = max(2, round(min(width, height) / 240))
    font_scale = max(0.4, min(width, height) / 800)
    for detection in detections:
        colour = LABEL_COLOURS_BGR[detection.label]
        x0, y0, x1, y1 = detection.box
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thickness)
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
