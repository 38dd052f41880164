"""Per-frame cost of the analysis pipelines on 640x480 frames made from real scene photos.

Each test-split photo of both scene datasets is letterboxed to 640x480 and shown as a short clip in
which it moves a few pixels per frame (a camera at 30 fps). Three pipelines run on the same frames,
each in its own process (so torch's and onnxruntime's threads never meet):

- ``baseline``: the original project: every frame res10 300x300, then torch eager MobileNetV2 at 224,
  one face at a time (untrained weights of the same architecture: timing only);
- ``per_frame``: this project's detector (``PipelineSettings.detector``, the server's default unless
  told) + the ONNX classifier at its input size with all faces in one batch, on every
  frame (what the evaluation command measures on still photos);
- ``stream``: ``vision.stream.StreamAnalyser`` as the server runs it per session (full detection on
  every N-th frame, faces followed in between, periodic re-classification), with OpenCV on one thread
  as in the server's analysis thread (the other two use OpenCV's default of all cores).

Per frame: detection, classification, drawing and total milliseconds; and, against the photos'
annotations moved with the frame, face recall and classification accuracy, so a faster pipeline can
be seen not to find or label fewer faces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from bench.frames import Scene, moved, test_split_scenes
from training.matching import Tally, classification_metrics
from vision.crops import Box
from vision.detector import FaceBox, FaceDetector
from vision.detector_factory import DEFAULT_DETECTOR, DetectorSpec, build_detector, build_region_detector
from vision.draw import draw_detections
from vision.labels import LABELS, best_label
from vision.pipeline import Detection

VARIANTS: tuple[str, ...] = ("baseline", "per_frame", "stream")
DATASETS: tuple[str, ...] = ("jolignier", "andrewmvd")
WARMUP_FRAMES = 5
MATCH_IOU = 0.4


@dataclass(frozen=True)
class PipelineSettings:
    classifier: Path
    images_per_dataset: int
    frames_per_image: int
    fps: float = 30.0
    detector: str = DEFAULT_DETECTOR


@dataclass
class VariantResult:
    variant: str
    frames: int
    detection_ms: float
    classification_ms: float
    drawing_ms: float
    total_ms: float
    total_median_ms: float
    total_p95_ms: float
    fps: float
    faces: int
    recall: float | None
    recall_40px: float | None
    precision: float | None
    accuracy_3class: float | None
    accuracy_binary: float | None
    full_detections: int | None = None
    classifications: int | None = None


class StageClock:
    """Milliseconds spent in each stage of the current frame."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {"detection": 0.0, "classification": 0.0, "drawing": 0.0}

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] += seconds * 1000.0

    def reset(self) -> dict[str, float]:
        spent = dict(self.stages)
        for stage in self.stages:
            self.stages[stage] = 0.0
        return spent


class TimedDetector:
    """A face detector, charging its time to the clock's detection stage."""

    def __init__(self, detector: FaceDetector, clock: StageClock) -> None:
        self.detector = detector
        self.clock = clock
        self.name = detector.name
        self.confidence = detector.confidence

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        started = time.perf_counter()
        try:
            return self.detector.detect(image)
        finally:
            self.clock.add("detection", time.perf_counter() - started)


class TimedClassifier:
    """A classifier wrapper charging crop + inference time to the clock's classification stage."""

    def __init__(self, classifier: Any, clock: StageClock) -> None:
        self.classifier = classifier
        self.clock = clock

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)

    def predict_boxes(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return np.asarray(self.classifier.predict_boxes(image, boxes))
        finally:
            self.clock.add("classification", time.perf_counter() - started)


def clip_frames(scenes: Sequence[Scene], frames_per_image: int, fps: float) -> list[tuple[int, float]]:
    """(scene index, time in seconds) of every frame: each photo for frames_per_image frames."""
    return [
        (s, (s * frames_per_image + i) / fps) for s in range(len(scenes)) for i in range(frames_per_image)
    ]


def _make_analyse(variant: str, settings: PipelineSettings, clock: StageClock) -> Any:
    """A function frame -> detections for the variant, plus an object exposing its counters (or None)."""
    if variant == "baseline":
        from bench.baseline import BaselinePipeline

        baseline = BaselinePipeline(TimedDetector(build_detector(DetectorSpec("res10")), clock))

        def analyse_baseline(frame: np.ndarray) -> list[Detection]:
            faces = baseline.detect(frame)
            started = time.perf_counter()
            detections = []
            for box, confidence in faces:
                probabilities = baseline.classify_one(frame, box)
                detections.append(Detection(box, *best_label(probabilities, LABELS), confidence))
            clock.add("classification", time.perf_counter() - started)
            return detections

        return analyse_baseline, None

    from vision.classifier import MaskClassifier
    from vision.pipeline import MaskDetectionPipeline

    classifier = TimedClassifier(MaskClassifier(settings.classifier), clock)
    if variant == "per_frame":
        detector = TimedDetector(build_detector(DetectorSpec(settings.detector)), clock)
        pipeline = MaskDetectionPipeline(detector, classifier)  # type: ignore[arg-type]
        return pipeline.analyse, None
    if variant == "stream":
        import cv2

        from vision.stream import StreamAnalyser, StreamSettings

        # As in the server's analysis thread (server/analysis/worker.py): OpenCV on one thread.
        cv2.setNumThreads(1)

        stream_settings = StreamSettings()
        spec = DetectorSpec(settings.detector)
        region_detector = TimedDetector(build_region_detector(spec, stream_settings.region_input), clock)
        # The analyser's time is the video's (frame n at n / fps), so that its full detections by time fall
        # on the same frames however fast this machine runs them.
        video_time = VideoTime(settings.fps)
        analyser = StreamAnalyser(
            TimedDetector(build_detector(spec), clock),
            classifier,
            stream_settings,
            region_detector,
            clock=video_time,
        )

        def analyse_stream(frame: np.ndarray) -> list[Detection]:
            video_time.frames += 1
            return list(analyser.analyse(frame))

        return analyse_stream, analyser
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


class VideoTime:
    """Seconds of video: the frames analysed so far at `fps`."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.frames = 0

    def __call__(self) -> float:
        return self.frames / self.fps


def run_variant(variant: str, settings: PipelineSettings) -> VariantResult:
    """Time one pipeline over all clip frames (in this process) and score its detections."""
    clock = StageClock()
    analyse, counters = _make_analyse(variant, settings, clock)
    scenes = [
        scene for dataset in DATASETS for scene in test_split_scenes(dataset, settings.images_per_dataset)
    ]
    frames = clip_frames(scenes, settings.frames_per_image, settings.fps)
    warmup_image, _ = moved(scenes[0], 0.0)
    for _ in range(WARMUP_FRAMES):
        draw_detections(warmup_image.copy(), analyse(warmup_image))
    if counters is not None:
        counters.reset()
        counters.full_detections = counters.classifications = 0
    clock.reset()
    per_frame: list[dict[str, float]] = []
    tally = Tally()
    for scene_index, t in frames:
        image, truths = moved(scenes[scene_index], t)
        output = image.copy()
        started = time.perf_counter()
        detections = analyse(image)
        drawing_started = time.perf_counter()
        draw_detections(output, detections)
        finished = time.perf_counter()
        clock.add("drawing", finished - drawing_started)
        stages = clock.reset()
        stages["total"] = (finished - started) * 1000.0
        per_frame.append(stages)
        predictions = [
            (d.label, (float(d.box[0]), float(d.box[1]), float(d.box[2]), float(d.box[3])))
            for d in detections
        ]
        tally.add_image(truths, predictions, MATCH_IOU)
    detection = tally.detection_metrics()
    labels_mean_something = variant != "baseline"
    classification = classification_metrics(tally.confusion) if labels_mean_something else {}
    totals = [frame["total"] for frame in per_frame]
    return VariantResult(
        variant=variant,
        frames=len(per_frame),
        detection_ms=float(np.mean([f["detection"] for f in per_frame])),
        classification_ms=float(np.mean([f["classification"] for f in per_frame])),
        drawing_ms=float(np.mean([f["drawing"] for f in per_frame])),
        total_ms=float(np.mean(totals)),
        total_median_ms=float(np.median(totals)),
        total_p95_ms=float(np.percentile(totals, 95)),
        fps=1000.0 / float(np.mean(totals)),
        faces=len(tally.truths),
        recall=detection["recall"],
        recall_40px=detection["recall_40px"],
        precision=detection["precision"],
        accuracy_3class=classification.get("accuracy_3class"),
        accuracy_binary=classification.get("accuracy_binary"),
        full_detections=getattr(counters, "full_detections", None),
        classifications=getattr(counters, "classifications", None),
    )


def run_pipelines(settings: PipelineSettings, variants: Sequence[str] = VARIANTS) -> list[VariantResult]:
    """Each variant in a fresh process, one after the other, on the same frames."""
    results = []
    for variant in variants:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            results.append(pool.submit(run_variant, variant, settings).result())
    return results


def results_table(results: Sequence[VariantResult]) -> str:
    """A Markdown table of the variants, with each one's speed relative to the baseline."""
    baseline_fps = next((r.fps for r in results if r.variant == "baseline"), None)

    def number(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| pipeline | frames | detection ms | classification ms | drawing ms | total ms (median, p95) | fps "
        "| x baseline | recall | recall >=40px | accuracy 3-class | accuracy binary |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r.fps / baseline_fps if baseline_fps else None
        lines.append(
            f"| {r.variant} | {r.frames} | {number(r.detection_ms)} | {number(r.classification_ms)} "
            f"| {number(r.drawing_ms, 2)} | {number(r.total_ms)} ({number(r.total_median_ms)}, "
            f"{number(r.total_p95_ms)}) "
            f"| {number(r.fps)} "
            f"| {number(ratio, 2)} | {number(r.recall, 3)} | {number(r.recall_40px, 3)} "
            f"| {number(r.accuracy_3class, 3)} | {number(r.accuracy_binary, 3)} |"
        )
    return "\n".join(lines)
