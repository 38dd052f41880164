"""YuNet (libfacedetection) through the ``yuface`` wheel, whose weights are compiled into the library.

Trained on WIDER FACE, so it sees small, turned and masked faces that res10 misses (the comparison and
the rule that made it the default: models/MODEL_CARD.md, "Face detector"). The wheel exists for
CPython <= 3.11 on x86_64 only; elsewhere `--detector res10` still runs.

Its boxes are tighter than the annotators' (forehead and chin cut), so each box is mapped by a fixed
`BoxGeometry` fitted on the scene train split (``python -m training.fit_box_geometry``): the
classifier then sees the crops it was trained on, and matched boxes overlap the annotations better.
"""

from __future__ import annotations

import ctypes
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from vision.detector import DetectorFileError, FaceBox, face_boxes, usable_frame

DEFAULT_INPUT = (480, 360)
DEFAULT_CONFIDENCE = 0.6
MIN_SIDE = 20
"""Smaller faces are left out: YuNet finds faces down to about 10 px (a face in a poster on the wall
behind a person, a crowd far away), but a crop that small cannot be classified, and res10 never
reported them either."""


@dataclass(frozen=True)
class BoxGeometry:
    """A box mapped as centre + (dx * w, dy * h), size (sw * w, sh * h): the detector's box geometry
    brought to the annotators'."""

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) boxes x0, y0, x1, y1 -> mapped boxes (unclipped)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        cx = (boxes[:, 0] + boxes[:, 2]) / 2.0 + self.dx * width
        cy = (boxes[:, 1] + boxes[:, 3]) / 2.0 + self.dy * height
        half_w, half_h = self.sw * width / 2.0, self.sh * height / 2.0
        return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


# Fitted on the scene train split by `python -m training.fit_box_geometry` (medians over 3,348 matched
# faces; models/eval/box_geometry_yunet.json: mean IoU with the annotations 0.646 -> 0.713).
YUNET_GEOMETRY = BoxGeometry(dx=0.028, dy=0.117, sw=1.032, sh=0.924)


def _load_yuface() -> ModuleType:
    try:
        return importlib.import_module("yuface")
    except ImportError as exc:
        raise DetectorFileError(
            "the YuNet face detector needs the PyPI package yuface (CPython <= 3.11 on x86_64): "
            f"pip install -r requirements.txt, or run with --detector res10 ({exc})"
        ) from exc


def _omp_thread_setter(module: ModuleType) -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime that the wheel bundles (``yuface.libs/libgomp-*``).

    libgomp's thread count is per calling thread, and with two threads on a busy 2-core machine a
    detection waits at every barrier for a preempted thread (several times slower than one thread:
    models/MODEL_CARD.md, "Face detector"), so the count is set before every call.
    """
    libs = Path(module.__file__ or "").resolve().parent.parent / "yuface.libs"
    for library in sorted(libs.glob("libgomp*.so*")):
        try:
            setter = ctypes.CDLL(str(library)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = None
        return setter
    return None


class YuNetDetector:
    """YuNet on the frame scaled to fit ``input_size`` (width x height), aspect kept.

    The network is fully convolutional: any input size works, and the cost grows with its area; a
    640x480 frame runs at its own size by default.
    """

    name = "yunet"

    def __init__(
        self,
        input_size: tuple[int, int] = DEFAULT_INPUT,
        confidence: float = DEFAULT_CONFIDENCE,
        geometry: BoxGeometry = YUNET_GEOMETRY,
        threads: int = 1,
    ) -> None:
        module = _load_yuface()
        self._detect: Any = module.c_detect
        self._set_threads = _omp_thread_setter(module)
        self.input_size = input_size
        self.confidence = confidence
        self.geometry = geometry
        self.threads = threads

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        frame = usable_frame(image)
        if frame is None:
            return []
        height, width = frame.shape[:2]
        scale = min(self.input_size[0] / width, self.input_size[1] / height)
        if abs(scale - 1.0) > 1e-3:
            size = (max(round(width * scale), 2), max(round(height * scale), 2))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            scale_x, scale_y = width / size[0], height / size[1]
        else:
            scale_x = scale_y = 1.0
        if self._set_threads is not None:
            self._set_threads(self.threads)
        rows = np.asarray(self._detect(np.ascontiguousarray(frame)), dtype=np.float64).reshape(-1, 16)
        confidences = rows[:, 0] / 100.0
        rows, confidences = rows[confidences >= self.confidence], confidences[confidences >= self.confidence]
        x, y, w, h = rows[:, 1] * scale_x, rows[:, 2] * scale_y, rows[:, 3] * scale_x, rows[:, 4] * scale_y
        boxes = self.geometry.apply(np.stack([x, y, x + w, y + h], axis=1))
        return face_boxes(boxes, confidences, width, height, min_side=MIN_SIDE)
