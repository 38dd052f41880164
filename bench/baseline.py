"""The original project's per-frame pipeline, as the speed baseline.

Every frame: res10 SSD at 300x300, then for each face, one at a time, the face box cut out, converted
to RGB, resized to 224x224 and run through MobileNetV2 in torch eager mode. The network here is
randomly initialised (same architecture, 3 classes): it is only timed, its labels mean nothing.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vision.detector import FaceDetector
from vision.labels import LABELS, best_label
from vision.networks import build_network
from vision.pipeline import Detection

BASELINE_INPUT = 224


class BaselinePipeline:
    """res10 300x300 + torch eager MobileNetV2 224, one face per forward pass."""

    def __init__(self, detector: FaceDetector, threads: int = 2) -> None:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.detector = detector
        self.network = build_network("mobilenet_v2", len(LABELS)).eval()

    def detect(self, frame: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        return [(face.box, face.confidence) for face in self.detector.detect(frame)]

    def classify_one(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = box
        face = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2RGB)
        face = cv2.resize(face, (BASELINE_INPUT, BASELINE_INPUT))
        tensor = torch.from_numpy(face).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        with torch.inference_mode():
            return torch.softmax(self.network(tensor), dim=1)[0].numpy()

    def analyse(self, frame: np.ndarray) -> list[Detection]:
        detections = []
        for box, confidence in self.detect(frame):
            probabilities = self.classify_one(frame, box)
            detections.append(Detection(box, *best_label(probabilities, LABELS), face_confidence=confidence))
        return detections
