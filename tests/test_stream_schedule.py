"""When the stream analyser runs a full detection: by time as well as by count, so that a face that enters
is found within the detection interval however few frames per second a camera gets analysed (many cameras
share one analysis). The detectors here are stand-ins that say where the faces are, and the clock is the
test's: the schedule alone is under test (tests/test_stream.py runs the real detectors)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vision.crops import Box
from vision.detector import FaceBox
from vision.labels import LABELS
from vision.stream import StreamAnalyser, StreamSettings

FACE_A = FaceBox((100, 100, 200, 220), 0.9)
FACE_B = FaceBox((400, 120, 500, 240), 0.9)
FRAME = np.full((480, 640, 3), 110, np.uint8)
"""Flat: the optical flow finds no corners, so a followed face is searched in its region (found there)."""


class ListedFaces:
    """A full-frame detector that finds the faces it is told, and counts its calls."""

    name = "yunet"
    confidence = 0.6

    def __init__(self) -> None:
        self.faces = [FACE_A]
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        return list(self.faces)


class CentredFace:
    """A region detector that finds one face in the middle of every search region it is given."""

    name = "yunet"
    confidence = 0.6

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        side = image.shape[0]
        return [FaceBox((round(side * 0.2), round(side * 0.2), round(side * 0.8), round(side * 0.8)), 0.9)]


class SaysMasked:
    labels: tuple[str, ...] = LABELS

    def predict_boxes(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        probabilities = np.zeros((len(boxes), len(LABELS)), np.float32)
        probabilities[:, 0] = 1.0
        return probabilities


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def analyser(settings: StreamSettings) -> tuple[StreamAnalyser, ListedFaces, Clock]:
    detector, clock = ListedFaces(), Clock()
    stream = StreamAnalyser(detector, SaysMasked(), settings, region_detector=CentredFace(), clock=clock)
    return stream, detector, clock


def full_detections_at(fps: float, frames: int, settings: StreamSettings) -> int:
    stream, detector, clock = analyser(settings)
    for _ in range(frames):
        assert len(stream.analyse(FRAME)) == 1
        clock.now += 1.0 / fps
    return detector.calls


def test_at_a_high_rate_the_count_decides_and_at_a_low_rate_the_time() -> None:
    settings = StreamSettings(detect_every=8, detect_interval_s=0.5)
    # 30 analysed frames/s: every 8th frame (8 frames are 0.27 s, within the interval).
    assert full_detections_at(30.0, 48, settings) == 6
    # 4/s: every 2nd frame (0.5 s); 2/s (16 cameras sharing the analysis): every frame.
    assert full_detections_at(4.0, 48, settings) == 24
    assert full_detections_at(2.0, 48, settings) == 48
    # By count alone, as before: every 8th frame at any rate, 4 s apart at 2 frames/s.
    assert full_detections_at(2.0, 48, StreamSettings(detect_every=8, detect_interval_s=None)) == 6


def test_a_face_that_enters_is_found_within_the_interval_at_a_low_frame_rate() -> None:
    stream, detector, clock = analyser(StreamSettings(detect_every=8, detect_interval_s=0.5))
    for _ in range(3):
        stream.analyse(FRAME)
        clock.now += 0.4  # 2.5 analysed frames/s
    detector.faces = [FACE_A, FACE_B]
    waited = 0.0
    while not any(d.box == FACE_B.box for d in stream.analyse(FRAME)):
        clock.now += 0.4
        waited += 0.4
        assert waited <= 0.5, "the new face waited longer than the detection interval"
