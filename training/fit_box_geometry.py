"""Fit the map from a detector's boxes to the annotators' box geometry, on the scene train split.

The classifier was trained on crops of annotated boxes (`vision.crops`); a detector whose boxes sit
higher or are tighter than those would hand it other crops, and its matched boxes would overlap the
annotations less. The fit is the median, over matched faces >= 20 px, of the centre offset (in box
sizes) and the size ratio; it prints the `BoxGeometry` to paste into the detector's module (for YuNet:
`vision.yunet.YUNET_GEOMETRY`), and the IoU of matched boxes before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.evaluate import REPO_ROOT
from training.matching import greedy_match, short_side
from training.voc import load_scene_annotations
from vision.boxes import iou
from vision.detector_factory import DETECTOR_NAMES, DetectorSpec, build_detector
from vision.image_files import read_image
from vision.yunet import BoxGeometry

DEFAULT_SCENES = (
    REPO_ROOT.parent / "shared" / "data" / "scenes" / "andrewmvd",
    REPO_ROOT.parent / "shared" / "data" / "scenes" / "jolignier",
)
# Loose, so that a tight box still pairs with its face before the fit corrects it.
FIT_IOU = 0.3
MIN_SIDE = 20.0


def fit_geometry(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> BoxGeometry:
    """Median map from detected boxes to annotated ones, from (detected, annotated) box pairs."""
    detected = np.asarray([p[0] for p in pairs], dtype=np.float64)
    annotated = np.asarray([p[1] for p in pairs], dtype=np.float64)
    width, height = detected[:, 2] - detected[:, 0], detected[:, 3] - detected[:, 1]
    dx = ((annotated[:, 0] + annotated[:, 2]) - (detected[:, 0] + detected[:, 2])) / 2.0 / width
    dy = ((annotated[:, 1] + annotated[:, 3]) - (detected[:, 1] + detected[:, 3])) / 2.0 / height
    sw = (annotated[:, 2] - annotated[:, 0]) / width
    sh = (annotated[:, 3] - annotated[:, 1]) / height
    return BoxGeometry(
        dx=round(float(np.median(dx)), 3),
        dy=round(float(np.median(dy)), 3),
        sw=round(float(np.median(sw)), 3),
        sh=round(float(np.median(sh)), 3),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fit_box_geometry", description=__doc__)
    parser.add_argument("--detector", choices=DETECTOR_NAMES, default="yunet")
    parser.add_argument("--split", default="train")
    parser.add_argument("--scenes", type=Path, action="append")
    parser.add_argument("--json", type=Path, help="also write the fit and its figures here")
    args = parser.parse_args(argv)
    detector = build_detector(DetectorSpec(args.detector))
    if hasattr(detector, "geometry"):
        detector.geometry = BoxGeometry()
    pairs: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    for folder in args.scenes or DEFAULT_SCENES:
        for path, annotation in load_scene_annotations(folder, args.split):
            boxes = [face.box for face in detector.detect(read_image(path))]
            truths = [face.box for face in annotation.faces]
            for t, p in greedy_match(truths, boxes, FIT_IOU):
                if short_side(truths[t]) >= MIN_SIDE:
                    pairs.append((tuple(map(float, boxes[p])), truths[t]))
    geometry = fit_geometry(pairs)
    mapped = geometry.apply(np.asarray([p[0] for p in pairs]))
    before = float(np.mean([iou(d, a) for d, a in pairs]))
    after = float(np.mean([iou(m, a) for m, (_, a) in zip(mapped, pairs, strict=True)]))
    report = {
        "detector": args.detector,
        "split": args.split,
        "faces": len(pairs),
        "geometry": geometry.__dict__,
        "mean_iou_before": round(before, 4),
        "mean_iou_after": round(after, 4),
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
