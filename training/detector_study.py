"""Detector study: every candidate face detector on the annotated scene photos, side by side.

Each candidate is ``NAME:SIZE``: a detector of `vision.detector_factory` at a network input, ``WxH`` (res10:
the frame is stretched to it; yunet: the frame is scaled to fit it, aspect kept) or ``aspectL`` (long
side L, short side from the frame's aspect). Detections are kept down to a floor confidence so that
thresholds can be swept offline. Candidates run interleaved per image, so load from other processes
hits them alike; each is also timed on the photo resized to 640x480, the server's frame.

Reported per candidate, dataset and threshold: recall overall, by size band and by class (faces >= 40
px), precision against the annotations, and the mean IoU of matched boxes (models/MODEL_CARD.md,
"Face detector", has the table and the rule the default was chosen by).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.evaluate import DEFAULT_IOU, IOU_HELP, REPO_ROOT, EvaluationError
from training.matching import FloatBox, Tally, float_box
from training.voc import SceneAnnotation, load_scene_annotations
from vision.detector import DetectorFileError, FaceDetector
from vision.detector_factory import DETECTOR_NAMES, DetectorSpec, build_detector
from vision.image_files import ImageFileError, read_image
from vision.model_options import detector_size_argument

DEFAULT_CANDIDATES = (
    "res10:300x300",
    "res10:400x400",
    "yunet:640x480",
    "yunet:480x360",
    "yunet:320x240",
)
DEFAULT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DEFAULT_SCENES = (
    REPO_ROOT.parent / "shared" / "data" / "scenes" / "andrewmvd",
    REPO_ROOT.parent / "shared" / "data" / "scenes" / "jolignier",
)
# Detections below this are never useful; everything above is kept so thresholds can be swept offline.
FLOOR_CONFIDENCE = 0.2
SERVER_FRAME = (640, 480)


def network_input(spec: str, frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) of the network input for a size spec and a frame of ``frame_shape``."""
    if spec.startswith("aspect"):
        long_side = int(spec.removeprefix("aspect"))
        height, width = frame_shape[:2]
        scale = long_side / max(width, height)
        # Multiples of 4 keep the SSD's feature maps aligned with the input.
        return max(16, round(width * scale / 4) * 4), max(16, round(height * scale / 4) * 4)
    return detector_size_argument(spec)


@dataclass(frozen=True)
class Candidate:
    name: str
    size: str

    @property
    def label(self) -> str:
        return f"{self.name}:{self.size}"


def parse_candidate(text: str) -> Candidate:
    name, _, size = text.partition(":")
    if name not in DETECTOR_NAMES or not size:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:SIZE with NAME one of {DETECTOR_NAMES}")
    try:
        network_input(size, (480, 640))
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
    return Candidate(name, size)


@dataclass
class CandidateRun:
    """Detections (box, confidence) per image, and the time of every call, for one candidate."""

    candidate: Candidate
    detector: FaceDetector
    detections: dict[str, list[list[tuple[FloatBox, float]]]] = field(default_factory=dict)
    milliseconds: list[float] = field(default_factory=list)
    milliseconds_640: list[float] = field(default_factory=list)


def _set_input(detector: FaceDetector, size: tuple[int, int]) -> None:
    detector.input_size = size  # type: ignore[attr-defined]


def run_study(
    datasets: Sequence[tuple[str, Sequence[tuple[Path, SceneAnnotation]]]], runs: Sequence[CandidateRun]
) -> None:
    for name, pairs in datasets:
        for run in runs:
            run.detections[name] = []
        for image_path, _ in pairs:
            try:
                image = read_image(image_path)
            except ImageFileError as exc:
                raise EvaluationError(str(exc)) from exc
            frame = cv2.resize(image, SERVER_FRAME, interpolation=cv2.INTER_AREA)
            for run in runs:
                _set_input(run.detector, network_input(run.candidate.size, image.shape))
                started = time.perf_counter()
                faces = run.detector.detect(image)
                run.milliseconds.append(1000.0 * (time.perf_counter() - started))
                run.detections[name].append([(float_box(face.box), face.confidence) for face in faces])
                _set_input(run.detector, network_input(run.candidate.size, frame.shape))
                started = time.perf_counter()
                run.detector.detect(frame)
                run.milliseconds_640.append(1000.0 * (time.perf_counter() - started))


def detection_figures(
    pairs: Sequence[tuple[Path, SceneAnnotation]],
    detections: Sequence[Sequence[tuple[FloatBox, float]]],
    threshold: float,
    min_iou: float,
) -> dict[str, Any]:
    tally = Tally()
    for (_, annotation), found in zip(pairs, detections, strict=True):
        truths = [(face.label, face.box) for face in annotation.faces]
        kept = [("with_mask", box) for box, confidence in found if confidence >= threshold]
        tally.add_image(truths, kept, min_iou)
    details = tally.detail_metrics()
    return {
        **{key: _round(value) for key, value in tally.detection_metrics().items()},
        "recall_by_size": {k: _round(v) for k, v in details["recall_by_size"].items()},  # type: ignore[attr-defined]
        "recall_by_class": {k: _round(v) for k, v in details["recall_by_class"].items()},  # type: ignore[attr-defined]
        "matched_iou": details["matched_iou"],
        "predictions": tally.predictions,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarise(
    datasets: Sequence[tuple[str, Sequence[tuple[Path, SceneAnnotation]]]],
    runs: Sequence[CandidateRun],
    thresholds: Sequence[float],
    min_iou: float,
) -> dict[str, Any]:
    results = []
    all_pairs = [pair for _, pairs in datasets for pair in pairs]
    for run in runs:
        all_found = [found for name, _ in datasets for found in run.detections[name]]
        sweep: dict[str, dict[str, Any]] = {}
        for threshold in thresholds:
            per = {
                name: detection_figures(pairs, run.detections[name], threshold, min_iou)
                for name, pairs in datasets
            }
            per["both"] = detection_figures(all_pairs, all_found, threshold, min_iou)
            sweep[str(threshold)] = per
        results.append(
            {
                "candidate": run.candidate.label,
                "ms_median": round(float(np.median(run.milliseconds)), 2),
                "ms_640x480_median": round(float(np.median(run.milliseconds_640)), 2),
                "ms_640x480_p90": round(float(np.percentile(run.milliseconds_640, 90)), 2),
                # Per frame against the first candidate: robust to other processes' load, which hits
                # every candidate of one frame alike.
                "cost_vs_first": round(
                    float(np.median(np.array(run.milliseconds_640) / np.array(runs[0].milliseconds_640))), 2
                ),
                "thresholds": sweep,
            }
        )
    return {
        "settings": {"iou": min_iou, "datasets": {name: len(pairs) for name, pairs in datasets}},
        "results": results,
    }


def _cell(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def format_study(study: dict[str, Any]) -> str:
    settings = study["settings"]
    lines = [
        f"face detectors on {settings['datasets']} photos, IoU >= {settings['iou']}; recall of annotated "
        "faces (>= 40 px; by short side; masked >= 40 px), precision against the annotations, "
        "ms per 640x480 frame",
        f"{'candidate':<15}{'thr':>5}{'data':>11}{'rec40':>8}{'40-80':>8}{'80-160':>8}{'160+':>8}"
        f"{'masked':>8}{'prec.':>8}{'IoU':>6}{'ms':>7}",
    ]
    for result in study["results"]:
        for threshold, per in result["thresholds"].items():
            for name, f in per.items():
                bands = f["recall_by_size"]
                lines.append(
                    f"{result['candidate']:<15}{threshold:>5}{name:>11}{_cell(f['recall_40px']):>8}"
                    f"{_cell(bands['40-80']):>8}{_cell(bands['80-160']):>8}{_cell(bands['160+']):>8}"
                    f"{_cell(f['recall_by_class']['with_mask']):>8}{_cell(f['precision']):>8}"
                    f"{f['matched_iou'] or 0:>6.2f}{result['ms_640x480_median']:>7.1f}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.detector_study",
        description="Recall, precision and time per frame of every candidate face detector.",
    )
    parser.add_argument(
        "--scenes", type=Path, action="append", help="scene dataset folder (repeatable; default: both)"
    )
    parser.add_argument("--split", default="test", help="split from scenes/splits.csv (default test)")
    parser.add_argument(
        "--candidates",
        nargs="+",
        type=parse_candidate,
        default=[parse_candidate(text) for text in DEFAULT_CANDIDATES],
        help="NAME:SIZE, e.g. res10:300x300 yunet:640x480 res10:aspect400",
    )
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(DEFAULT_THRESHOLDS))
    parser.add_argument("--iou", type=float, default=DEFAULT_IOU, help=IOU_HELP)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "models" / "eval" / "detector_study.json")
    args = parser.parse_args(argv)
    floor = min(FLOOR_CONFIDENCE, *args.thresholds)
    try:
        datasets = [
            (folder.name, load_scene_annotations(folder, args.split))
            for folder in args.scenes or DEFAULT_SCENES
        ]
        runs = [
            CandidateRun(candidate, build_detector(DetectorSpec(candidate.name, confidence=floor)))
            for candidate in args.candidates
        ]
        run_study(datasets, runs)
    except (EvaluationError, DetectorFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    study = summarise(datasets, runs, args.thresholds, args.iou)
    study["settings"]["split"] = args.split
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(study, indent=2) + "\n")
    print(format_study(study))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
