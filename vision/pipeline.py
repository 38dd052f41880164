"""Detector + classifier on one frame: the analysis that every caller (server, CLI, evaluation) runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vision.classifier import MaskClassifier
from vision.detector import FaceDetector, to_bgr
from vision.labels import best_label


@dataclass(frozen=True)
class Detection:
    """One classified face: box in frame pixels, label, and the label's probability."""

    box: tuple[int, int, int, int]
    label: str
    score: float
    face_confidence: float

    def to_json(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "label": self.label,
            "score": round(self.score, 4),
            "face_confidence": round(self.face_confidence, 4),
        }


class MaskDetectionPipeline:
    """Finds every face of a frame and classifies all of them in one batch."""

    def __init__(self, detector: FaceDetector, classifier: MaskClassifier) -> None:
        self.detector = detector
        self.classifier = classifier

    def analyse(self, image: np.ndarray) -> list[Detection]:
        frame = to_bgr(image)
        faces = self.detector.detect(frame)
        if not faces:
            return []
        probabilities = self.classifier.predict_boxes(frame, [face.box for face in faces])
        labels = self.classifier.labels
        return [
            Detection(face.box, *best_label(probs, labels), face_confidence=face.confidence)
            for face, probs in zip(faces, probabilities, strict=True)
        ]
