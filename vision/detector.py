"""The face-detector seam: what every detector gives back, and the protocol that callers rely on.

Callers (the server's analysis, the stream analyser's region search, predict.py, the evaluation and the
benchmark) only see `FaceDetector`; the models behind it live in one module each (`vision.res10`,
`vision.yunet`) and are built by name in `vision.detector_factory`, so a further model touches one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


class DetectorFileError(RuntimeError):
    """The detector's model files are missing or unreadable, or its package is not installed."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: box in frame pixels (x0, y0, x1, y1), clipped to the frame."""

    box: tuple[int, int, int, int]
    confidence: float

    @property
    def short_side(self) -> int:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


class FaceDetector(Protocol):
    """Finds faces in an 8-bit frame of any size and aspect (grey, BGR or BGRA).

    Boxes come back in frame pixels, clipped to the frame, at least 2 px on each side, with a
    confidence in [0, 1] that is >= ``confidence``, most confident first. A frame under 2 px on a side
    has no faces.
    """

    name: str
    confidence: float

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any 8-bit image as 3-channel BGR: grayscale and BGRA frames are converted."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a grayscale, BGR or BGRA image, got shape {image.shape}")


def usable_frame(image: np.ndarray) -> np.ndarray | None:
    """The frame as BGR (`to_bgr`), or None when it is under 2 px on a side (no face can be in it)."""
    frame = to_bgr(image)
    height, width = frame.shape[:2]
    return frame if width >= 2 and height >= 2 else None


def face_boxes(
    boxes: np.ndarray,
    confidences: Sequence[float] | np.ndarray,
    width: int,
    height: int,
    min_side: int = 2,
) -> list[FaceBox]:
    """(N, 4) float boxes (x0, y0, x1, y1, frame pixels) as clipped `FaceBox`es, most confident first;
    boxes under ``min_side`` px on a side after clipping are left out."""
    faces: list[FaceBox] = []
    scores = np.asarray(confidences, dtype=np.float64)
    limits = np.array([width, height, width, height], dtype=np.float64)
    for index in np.argsort(-scores, kind="stable"):
        clipped = np.clip(np.rint(np.asarray(boxes[index], dtype=np.float64)), 0.0, limits)
        x0, y0, x1, y1 = (int(v) for v in clipped)
        if x1 - x0 >= max(min_side, 2) and y1 - y0 >= max(min_side, 2):
            faces.append(FaceBox(box=(x0, y0, x1, y1), confidence=float(scores[index])))
    return faces
