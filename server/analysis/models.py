"""The one place that builds the server's models from the settings (`load_models`).

With `--detect-every 1` every frame gets the full pipeline (detector, then classifier), and every camera
shares it. With N > 1 (the default) each camera gets its own `vision.stream.StreamAnalyser` over the one
shared detector and classifier: a full detection every N analysed frames and at least every
`--detect-interval` seconds, and cheap face following in between (detection is the dominant cost of a
frame: bench/RESULTS.md). The server runs these models in its analysis process
(`server.analysis.process`), which calls `load_models` in the child.
"""

from __future__ import annotations

import numpy as np

from server.analysis.analyser import FrameAnalyser
from server.settings import ServerConfig
from vision.classifier import MaskClassifier
from vision.detector import FaceDetector
from vision.detector_factory import build_detector, build_region_detector, region_input
from vision.pipeline import MaskDetectionPipeline
from vision.stream import StreamAnalyser, StreamSettings


class LoadedModels:
    """The detector, classifier and (when following faces) region detector, loaded once and shared by
    every camera: an `AnalyserSource`."""

    def __init__(
        self,
        detector: FaceDetector,
        classifier: MaskClassifier,
        settings: StreamSettings | None = None,
        region_detector: FaceDetector | None = None,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.settings = settings
        """None: every frame gets the full pipeline (`--detect-every 1`)."""
        self.region_detector = region_detector
        self.pipeline = MaskDetectionPipeline(detector, classifier)

    def open_stream(self) -> FrameAnalyser:
        """The analyser for one camera: the shared full pipeline, or a face follower of its own."""
        if self.settings is None:
            return self.pipeline
        return StreamAnalyser(self.detector, self.classifier, self.settings, self.region_detector)


def load_models(config: ServerConfig) -> LoadedModels:
    """Detector + classifier from the configured files, warmed up so that the first camera waits less.

    Raises vision's DetectorFileError / ModelFileError with a readable message when a file is missing.
    """
    detector = build_detector(config.detector_spec)
    classifier = MaskClassifier(config.classifier)
    blank = np.zeros((480, 640, 3), dtype=np.uint8)
    detector.detect(blank)
    classifier.predict_crops([np.zeros((classifier.input_size, classifier.input_size, 3), dtype=np.uint8)])
    if config.detect_every <= 1:
        return LoadedModels(detector, classifier)
    settings = StreamSettings(
        detect_every=config.detect_every, detect_interval_s=config.detect_interval or None
    )
    region_detector = build_region_detector(config.detector_spec, settings.region_input)
    side = region_input(config.detector, settings.region_input)
    region_detector.detect(np.zeros((side, side, 3), dtype=np.uint8))
    return LoadedModels(detector, classifier, settings, region_detector)
