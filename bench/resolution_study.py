"""What a smaller full-detection input costs in recall, by face size, and what it saves in time.

The full detection is the largest cost of an analysed frame that gets one (bench/RESULTS.md), and with
many cameras it is what limits each camera's analysed frames per second. Its input can shrink (the
detector scales the 640x480 frame to fit, `--detector-size`), but small faces then shrink below what the
detector finds. Here every test-split photo of both scene datasets is letterboxed to a 640x480 camera
frame (`bench.frames`), detected at each input size, and the annotated faces found (IoU >= 0.4) are counted
by their short side in camera pixels, with the median milliseconds per call (one thread, sizes in turn).

    python -m bench.resolution_study [--sizes 640x480,480x360,320x240] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench.frames import Scene, test_split_scenes
from vision.boxes import iou
from vision.detector import FaceDetector
from vision.detector_factory import DEFAULT_DETECTOR, DetectorSpec, build_detector
from vision.model_options import parse_detector_size

DATASETS = ("jolignier", "andrewmvd")
MATCH_IOU = 0.4
BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 24 px", 0, 24),
    ("24-40 px", 24, 40),
    ("40-64 px", 40, 64),
    ("64-96 px", 64, 96),
    (">= 96 px", 96, float("inf")),
)


@dataclass
class SizeResult:
    input: str
    median_ms: float
    recall_by_band: dict[str, float | None] = field(default_factory=dict)
    faces_by_band: dict[str, int] = field(default_factory=dict)
    recall_40px: float | None = None


def found_faces(detector: FaceDetector, scene: Scene) -> list[tuple[float, bool]]:
    """(short side, found) of every annotated face of a scene, greedy one-to-one matching."""
    boxes = [face.box for face in detector.detect(scene.image)]
    used: set[int] = set()
    results = []
    for _, box in scene.faces:
        best, best_overlap = None, MATCH_IOU
        for index, candidate in enumerate(boxes):
            overlap = iou(box, candidate)
            if index not in used and overlap >= best_overlap:
                best, best_overlap = index, overlap
        if best is not None:
            used.add(best)
        results.append((min(box[2] - box[0], box[3] - box[1]), best is not None))
    return results


def study(sizes: list[tuple[int, int]], images_per_dataset: int | None) -> list[SizeResult]:
    cv2.setNumThreads(1)
    scenes = [scene for dataset in DATASETS for scene in test_split_scenes(dataset, images_per_dataset)]
    detectors = [build_detector(DetectorSpec(DEFAULT_DETECTOR, input_size=size)) for size in sizes]
    timings: list[list[float]] = [[] for _ in sizes]
    faces: list[list[tuple[float, bool]]] = [[] for _ in sizes]
    for scene in scenes:
        for index, detector in enumerate(detectors):
            started = time.perf_counter()
            faces[index] += found_faces(detector, scene)
            timings[index].append((time.perf_counter() - started) * 1000.0)
    results = []
    for (width, height), times, found in zip(sizes, timings, faces, strict=True):
        result = SizeResult(f"{width}x{height}", float(np.median(times)))
        for name, low, high in BANDS:
            band = [hit for side, hit in found if low <= side < high]
            result.faces_by_band[name] = len(band)
            result.recall_by_band[name] = sum(band) / len(band) if band else None
        large = [hit for side, hit in found if side >= 40]
        result.recall_40px = sum(large) / len(large) if large else None
        results.append(result)
    return results


def table(results: list[SizeResult]) -> str:
    names = [name for name, _, _ in BANDS]
    counts = results[0].faces_by_band if results else {}
    lines = [
        "| input | ms per call | "
        + " | ".join(f"recall {n} ({counts.get(n, 0)} faces)" for n in names)
        + " | recall >= 40 px |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for r in results:
        cells = ["-" if r.recall_by_band[n] is None else f"{r.recall_by_band[n]:.3f}" for n in names]
        recall_40 = "-" if r.recall_40px is None else f"{r.recall_40px:.3f}"
        lines.append(f"| {r.input} | {r.median_ms:.1f} | " + " | ".join(cells) + f" | {recall_40} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="640x480,480x360,320x240")
    parser.add_argument("--images", type=int, help="test photos per dataset (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [parse_detector_size(text) for text in args.sizes.split(",")]
    results = study(sizes, args.images)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
