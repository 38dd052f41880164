"""Milliseconds per 640x480 frame of every face detector, side by side in one process.

The scene test photos letterboxed to 640x480 (the benchmark's frames, `bench.frames`), each detector at
its defaults (`vision.detector_factory`) and at its search-region input, called in turn on every frame so that
the load of other processes hits them alike; OpenCV and YuNet on one thread, as in the server's
analysis process. The full-frame detection is the largest cost of an analysed frame that gets one;
the region input is what the stream analyser pays for a face the optical flow lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from bench.frames import moved, test_split_scenes
from vision.detector import FaceDetector
from vision.detector_factory import (
    DETECTOR_NAMES,
    DetectorSpec,
    build_detector,
    build_region_detector,
    region_input,
)

DATASETS = ("jolignier", "andrewmvd")
WARMUP_CALLS = 3


@dataclass
class DetectorTiming:
    detector: str
    input: str
    calls: int
    median_ms: float
    p95_ms: float
    cost_vs_res10: float | None = None


def run_detector_bench(images_per_dataset: int) -> list[DetectorTiming]:
    cv2.setNumThreads(1)
    frames = [moved(scene, 0.0)[0] for d in DATASETS for scene in test_split_scenes(d, images_per_dataset)]
    side = {name: region_input(name) for name in DETECTOR_NAMES}
    entries: list[tuple[str, str, FaceDetector, int | None]] = []
    for name in DETECTOR_NAMES:
        spec = DetectorSpec(name)
        width, height = spec.resolved_input_size
        entries.append((name, f"{width}x{height}", build_detector(spec), None))
        entries.append((name, f"region {side[name]}x{side[name]}", build_region_detector(spec), side[name]))
    times: list[list[float]] = [[] for _ in entries]
    for frame in frames:
        centre = np.ascontiguousarray(frame[112:368, 192:448])  # a 256 px patch, resampled as a region is
        for index, (_, _, detector, patch_side) in enumerate(entries):
            image = (
                frame
                if patch_side is None
                else cv2.resize(centre, (patch_side, patch_side), interpolation=cv2.INTER_AREA)
            )
            for _ in range(WARMUP_CALLS if not times[index] else 0):
                detector.detect(image)
            started = time.perf_counter()
            detector.detect(image)
            times[index].append(1000.0 * (time.perf_counter() - started))
    results = [
        DetectorTiming(
            name,
            label,
            len(spent),
            round(float(np.median(spent)), 2),
            round(float(np.percentile(spent, 95)), 2),
        )
        for (name, label, _, _), spent in zip(entries, times, strict=True)
    ]
    reference = next(
        (
            times[i]
            for i, (name, _, _, patch_side) in enumerate(entries)
            if name == "res10" and patch_side is None
        ),
        None,
    )
    if reference is not None:
        for result, spent in zip(results, times, strict=True):
            result.cost_vs_res10 = round(float(np.median(np.array(spent) / np.array(reference))), 2)
    return results


def detector_table(results: list[DetectorTiming]) -> str:
    lines = [
        "| detector | input | calls | median ms | p95 ms | cost vs res10 300x300 (median per-frame ratio) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cost = "-" if r.cost_vs_res10 is None else f"{r.cost_vs_res10:.2f}x"
        lines.append(
            f"| {r.detector} | {r.input} | {r.calls} | {r.median_ms:.1f} | {r.p95_ms:.1f} | {cost} |"
        )
    return "\n".join(lines)
