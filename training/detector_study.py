"""Detector study: recall on small faces and time per frame for several res10 network input sizes.

The res10 SSD was trained at 300x300; a frame is resized to the network input, so a 20 px face in a
600 px photo shrinks to about 10 px and is missed. A larger input keeps small faces visible at a
cost that grows with the input's area. This measures both on the annotated scene photos, plus a
confidence-threshold sweep, so the default can be chosen from numbers.

Sizes are ``WxH`` (fixed network input, the frame is stretched to it) or ``aspectL`` (long side L,
short side from the frame's aspect, so faces are not squeezed in wide or portrait frames).
Sizes are interleaved per image, so load from other processes hits every size alike.
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

import numpy as np

from training.evaluate import DEFAULT_IOU, IOU_HELP, REPO_ROOT, EvaluationError
from training.matching import FloatBox, Tally, float_box
from training.voc import SceneAnnotation, load_scene_annotations
from vision.detector import FaceDetector
from vision.image_files import ImageFileError, read_image
from vision.model_options import detector_size_argument

DEFAULT_SIZES = ("300x300", "400x400", "500x500", "600x600", "aspect400", "aspect600")
DEFAULT_THRESHOLDS = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
DEFAULT_SCENES = (
    REPO_ROOT.parent / "shared" / "data" / "scenes" / "andrewmvd",
    REPO_ROOT.parent / "shared" / "data" / "scenes" / "jolignier",
)
# Detections below this are never useful; everything above is kept so thresholds can be swept offline.
FLOOR_CONFIDENCE = 0.1


def network_input(spec: str, frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) of the network input for a size spec and a frame of ``frame_shape``."""
    if spec.startswith("aspect"):
        long_side = int(spec.removeprefix("aspect"))
        height, width = frame_shape[:2]
        scale = long_side / max(width, height)
        # Multiples of 4 keep the SSD's feature maps aligned with the input.
        return max(16, round(width * scale / 4) * 4), max(16, round(height * scale / 4) * 4)
    return detector_size_argument(spec)


def check_spec(spec: str) -> str:
    network_input(spec, (480, 640))
    return spec


@dataclass
class SizeRun:
    """Detections (box, confidence) per image and the time of every detect call for one size spec."""

    spec: str
    detections: dict[str, list[list[tuple[FloatBox, float]]]] = field(default_factory=dict)
    milliseconds: list[float] = field(default_factory=list)


def run_study(
    datasets: Sequence[tuple[str, Sequence[tuple[Path, SceneAnnotation]]]],
    specs: Sequence[str],
    detector: FaceDetector,
) -> list[SizeRun]:
    runs = [SizeRun(spec) for spec in specs]
    for name, pairs in datasets:
        for run in runs:
            run.detections[name] = []
        for image_path, _ in pairs:
            try:
                image = read_image(image_path)
            except ImageFileError as exc:
                raise EvaluationError(str(exc)) from exc
            for run in runs:
                detector.input_size = network_input(run.spec, image.shape)
                started = time.perf_counter()
                faces = detector.detect(image)
                run.milliseconds.append(1000.0 * (time.perf_counter() - started))
                run.detections[name].append([(float_box(face.box), face.confidence) for face in faces])
    return runs


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
    return {key: _round(value) for key, value in tally.detection_metrics().items()}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarise(
    datasets: Sequence[tuple[str, Sequence[tuple[Path, SceneAnnotation]]]],
    runs: Sequence[SizeRun],
    thresholds: Sequence[float],
    confidence: float,
    min_iou: float,
) -> dict[str, Any]:
    results = []
    for run in runs:
        per_dataset = {
            name: detection_figures(pairs, run.detections[name], confidence, min_iou)
            for name, pairs in datasets
        }
        sweep = {
            name: {
                str(threshold): detection_figures(pairs, run.detections[name], threshold, min_iou)
                for threshold in thresholds
            }
            for name, pairs in datasets
        }
        results.append(
            {
                "size": run.spec,
                "ms_median": round(float(np.median(run.milliseconds)), 2),
                "ms_p90": round(float(np.percentile(run.milliseconds, 90)), 2),
                # Per image against the first size: robust to the load of other processes, which
                # hits both sizes of one image alike.
                "cost_vs_first": round(
                    float(np.median(np.array(run.milliseconds) / np.array(runs[0].milliseconds))), 2
                ),
                "datasets": per_dataset,
                "confidence_sweep": sweep,
            }
        )
    return {
        "settings": {
            "confidence": confidence,
            "iou": min_iou,
            "datasets": {name: len(pairs) for name, pairs in datasets},
        },
        "results": results,
    }


def _cell(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def format_study(study: dict[str, Any]) -> str:
    settings = study["settings"]
    lines = [
        f"res10 detector, confidence {settings['confidence']}, IoU {settings['iou']}, "
        f"images {settings['datasets']}",
        f"{'input':<11}{'dataset':<11}{'recall':>8}{'prec.':>8}{'>=40px':>8}{'20-40px':>9}{'<20px':>8}"
        f"{'ms med':>8}{'ms p90':>8}{'cost':>7}",
    ]
    for result in study["results"]:
        for name, figures in result["datasets"].items():
            lines.append(
                f"{result['size']:<11}{name:<11}{_cell(figures['recall']):>8}{_cell(figures['precision']):>8}"
                f"{_cell(figures['recall_40px']):>8}{_cell(figures['recall_20-40px']):>9}"
                f"{_cell(figures['recall_<20px']):>8}{result['ms_median']:>8.1f}{result['ms_p90']:>8.1f}"
                f"{result['cost_vs_first']:>6.2f}x"
            )
    lines.append("")
    lines.append("confidence sweep: recall / precision / recall_40px")
    for result in study["results"]:
        for name, sweep in result["confidence_sweep"].items():
            cells = "  ".join(
                f"{threshold}: {_cell(f['recall'])}/{_cell(f['precision'])}/{_cell(f['recall_40px'])}"
                for threshold, f in sweep.items()
            )
            lines.append(f"{result['size']:<11}{name:<11}{cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.detector_study",
        description="Recall and time per frame of the res10 face detector for several network input sizes.",
    )
    parser.add_argument(
        "--scenes", type=Path, action="append", help="scene dataset folder (repeatable; default: both)"
    )
    parser.add_argument("--split", default="test", help="split from scenes/splits.csv (default test)")
    parser.add_argument(
        "--sizes", nargs="+", type=check_spec, default=list(DEFAULT_SIZES), help="WxH or aspectL specs"
    )
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(DEFAULT_THRESHOLDS))
    parser.add_argument("--confidence", type=float, default=0.5, help="threshold of the main table")
    parser.add_argument("--iou", type=float, default=DEFAULT_IOU, help=IOU_HELP)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "models" / "eval" / "detector_study.json")
    args = parser.parse_args(argv)
    try:
        datasets = [
            (folder.name, load_scene_annotations(folder, args.split))
            for folder in args.scenes or DEFAULT_SCENES
        ]
        detector = FaceDetector(confidence=min(FLOOR_CONFIDENCE, *args.thresholds, args.confidence))
        runs = run_study(datasets, args.sizes, detector)
    except (EvaluationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    study = summarise(datasets, runs, args.thresholds, args.confidence, args.iou)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(study, indent=2) + "\n")
    print(format_study(study))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
