"""What the analysis worker runs, built from the settings.

With `--detect-every 1` every frame gets the full pipeline (detector, then classifier). With N > 1 each
session gets its own `vision.stream.StreamAnalyser` over the one shared detector and classifier: a full
detection every N analysed frames and cheap region searches that follow the faces in between (issue 4:
detection is the dominant cost of a frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from server.config import ServerConfig
from server.worker import FrameAnalyser
from vision.classifier import MaskClassifier
from vision.detector import FaceDetector
from vision.detectors import build_detector, build_region_detector, region_input
from vision.pipeline import Detection, MaskDetectionPipeline
from vision.stream import StreamAnalyser, StreamSettings


@runtime_checkable
class StreamAnalyserSource(Protocol):
    """An analyser that hands each video stream its own stateful analyser."""

    def analyse(self, image: np.ndarray) -> Sequence[Detection]: ...

    def new_stream(self) -> FrameAnalyser: ...


class StreamingPipeline:
    """The shared models; `new_stream()` gives a session its own face-following analyser."""

    def __init__(
        self,
        detector: FaceDetector,
        classifier: MaskClassifier,
        settings: StreamSettings,
        region_detector: FaceDetector,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.settings = settings
        self.region_detector = region_detector
        self._full = MaskDetectionPipeline(detector, classifier)

    def analyse(self, image: np.ndarray) -> list[Detection]:
        """One frame on its own: the full pipeline."""
        return self._full.analyse(image)

    def new_stream(self) -> StreamAnalyser:
        return StreamAnalyser(self.detector, self.classifier, self.settings, self.region_detector)


def load_pipeline(config: ServerConfig) -> MaskDetectionPipeline | StreamingPipeline:
    """Detector + classifier from the configured files, warmed up so that the first camera waits less.

    Raises vision's DetectorFileError / ModelFileError with a readable message when a file is missing.
    """
    detector = build_detector(config.detector_spec)
    classifier = MaskClassifier(config.classifier)
    blank = np.zeros((480, 640, 3), dtype=np.uint8)
    detector.detect(blank)
    classifier.predict_crops([np.zeros((classifier.input_size, classifier.input_size, 3), dtype=np.uint8)])
    if config.detect_every <= 1:
        return MaskDetectionPipeline(detector, classifier)
    settings = StreamSettings(detect_every=config.detect_every)
    region_detector = build_region_detector(config.detector_spec, settings.region_input)
    side = region_input(config.detector, settings.region_input)
    region_detector.detect(np.zeros((side, side, 3), dtype=np.uint8))
    return StreamingPipeline(detector, classifier, settings, region_detector)
