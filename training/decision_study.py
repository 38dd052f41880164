"""How the classifier's outputs become a verdict: views averaged per face, and the class prior.

Two inference-time levers that need no training, measured on the val split as the server runs the model
(ONNX, crops cut from the photos as the server cuts them):

- **views**: each face is classified as it is and mirrored (the default), optionally also with its box
  scaled by 0.9 and 1.1 around its centre (training augments the crop region by 0.8-1.2x, so every view
  is one the network has seen);
- **prior correction**: training draws each class with probability ~ count**(1 - power)
  (``--balance-power``, 0.5 for the committed model), so the network learned the posterior under that
  sampling prior and over-predicts the rare third class at inference, where classes occur at their
  natural frequency (~ count). Adding ``strength * power * log(count)`` to each logit moves it back
  towards the natural prior (strength 1: all the way; logit adjustment, Menon et al. 2021).

The logits of every view are collected once per crop; each setting is then scored from them, so a table
row costs nothing. Sources: ``faces/`` val crops, the scene val faces on their annotated boxes, and the
scene val faces the detector finds (matched to annotations at IoU 0.4, as ``training.evaluate`` does).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.evaluate import DEFAULT_IOU, face_folder_entries
from training.matching import float_box, greedy_match
from training.metrics import classification_report
from training.voc import load_scene_annotations
from vision.classifier import MaskClassifier, softmax
from vision.crops import Box
from vision.detector import to_bgr
from vision.detector_factory import build_detector
from vision.image_files import read_image
from vision.labels import LABELS
from vision.model_options import add_model_arguments, detector_spec

SCALES: tuple[float, ...] = (1.0, 0.9, 1.1)
STRENGTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class CollectedLogits:
    """Logits of every view of every face of one source, shape (faces, scales, 2, classes): the second
    axis follows `SCALES`, the third is as it is / mirrored."""

    name: str
    logits: np.ndarray
    truth: np.ndarray


def scaled_box(box: Box, scale: float) -> Box:
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2.0, (y0 + y1) / 2.0, (x1 - x0) * scale / 2.0, (y1 - y0) * scale / 2.0
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def view_logits(classifier: MaskClassifier, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """(len(boxes), len(SCALES), 2, classes) logits for the faces of one image."""
    crops = [classifier.crop(image, scaled_box(box, s)) for box in boxes for s in SCALES]
    both = classifier.logits([*crops, *(crop[:, ::-1] for crop in crops)])
    n = len(crops)
    return np.stack([both[:n], both[n:]], axis=1).reshape(len(boxes), len(SCALES), 2, -1)


def collect_faces(classifier: MaskClassifier, faces_dir: Path, split: str) -> CollectedLogits:
    from training.data import face_image_box

    logits: list[np.ndarray] = []
    truth: list[int] = []
    for path, label in face_folder_entries(faces_dir, split):
        image = read_image(path)
        logits.append(view_logits(classifier, image, [face_image_box(image, classifier.info.margin)]))
        truth.append(LABELS.index(label))
    return CollectedLogits("faces/ crops", np.concatenate(logits), np.array(truth))


def collect_scenes(
    classifier: MaskClassifier, scene_dirs: Sequence[Path], split: str, args: argparse.Namespace
) -> tuple[CollectedLogits, CollectedLogits]:
    """The annotated faces on their own boxes, and the faces the detector finds on its boxes."""
    detector = build_detector(detector_spec(args))
    annotated: list[np.ndarray] = []
    detected: list[np.ndarray] = []
    annotated_truth: list[int] = []
    detected_truth: list[int] = []
    for folder in scene_dirs:
        for path, annotation in load_scene_annotations(folder, split):
            image = to_bgr(read_image(path))
            boxes = [face.box for face in annotation.faces]
            labels = [LABELS.index(face.label) for face in annotation.faces]
            if boxes:
                annotated.append(view_logits(classifier, image, boxes))
                annotated_truth.extend(labels)
            found = [face.box for face in detector.detect(image)]
            pairs = greedy_match(boxes, [float_box(box) for box in found], DEFAULT_IOU)
            if pairs:
                detected.append(view_logits(classifier, image, [found[p] for _, p in pairs]))
                detected_truth.extend(labels[t] for t, _ in pairs)
    return (
        CollectedLogits("scene crops, annotated boxes", np.concatenate(annotated), np.array(annotated_truth)),
        CollectedLogits("scenes, detected faces", np.concatenate(detected), np.array(detected_truth)),
    )


def prior_offsets(counts: Sequence[int], power: float) -> np.ndarray:
    """Per-class logit offsets that take a model trained with ``--balance-power power`` (sampling prior
    ~ count**(1 - power)) to the natural prior ~ count: log(count) - (1 - power) * log(count). Only
    differences between classes matter."""
    return power * np.log(np.asarray(counts, dtype=np.float64))


def verdicts(collected: CollectedLogits, scales: int, offsets: np.ndarray) -> np.ndarray:
    """The predicted class of each face: softmax of every view's adjusted logits, averaged."""
    views = collected.logits[:, :scales] + offsets
    flat = views.reshape(-1, views.shape[-1])
    probabilities = softmax(flat).reshape(views.shape).mean(axis=(1, 2))
    return probabilities.argmax(axis=1)


def study(sources: Sequence[CollectedLogits], counts: Sequence[int], power: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for scales in (1, len(SCALES)):
        for strength in STRENGTHS:
            offsets = strength * prior_offsets(counts, power)
            row: dict[str, object] = {
                "views": "mirror" if scales == 1 else "mirror x 3 scales",
                "strength": strength,
            }
            for source in sources:
                report = classification_report(source.truth, verdicts(source, scales, offsets))
                row[source.name] = {
                    "n": report["crops"],
                    "binary": report["binary_accuracy"],
                    "macro_f1": report["macro_f1"],
                    "confusion": report["confusion"],
                }
            rows.append(row)
    return rows


def format_rows(rows: Sequence[dict[str, object]], names: Sequence[str]) -> str:
    header = "| views | prior strength | " + " | ".join(f"{name}: binary / macro-F1" for name in names) + " |"
    lines = [header, "|" + "---|" * (2 + len(names))]
    for row in rows:
        cells = []
        for name in names:
            figures = row[name]
            assert isinstance(figures, dict)
            cells.append(f"{100 * figures['binary']:.2f}% / {figures['macro_f1']:.3f}")
        lines.append(f"| {row['views']} | {row['strength']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.decision_study", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/faces"))
    parser.add_argument(
        "--scenes", type=Path, action="append", help="scene dataset folder; repeat (default: both)"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--metrics",
        type=Path,
        default=Path("models/training_metrics.json"),
        help="the model's training record: class counts of its train split",
    )
    parser.add_argument(
        "--balance-power", type=float, default=0.5, help="the sampler's power the model was trained with"
    )
    parser.add_argument("--json", type=Path, help="also write every row, with confusion matrices")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    scene_dirs = args.scenes or [
        Path("../shared/data/scenes/andrewmvd"),
        Path("../shared/data/scenes/jolignier"),
    ]
    counts_by_label = json.loads(args.metrics.read_text())["train_class_counts"]
    counts = [int(counts_by_label[label]) for label in LABELS]
    classifier = MaskClassifier(args.classifier)
    sources = [
        collect_faces(classifier, args.faces, args.split),
        *collect_scenes(classifier, scene_dirs, args.split, args),
    ]
    rows = study(sources, counts, args.balance_power)
    print(
        f"split {args.split}, classifier {args.classifier}, train counts {counts}, power {args.balance_power}"
    )
    print(format_rows(rows, [source.name for source in sources]))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
