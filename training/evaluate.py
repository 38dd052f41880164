"""The evaluation command: every figure this project reports is measured with it.

Three modes, one report format (a printed table and a JSON file):

- ``--scenes DIR``: detector + classifier end to end on photos with Pascal VOC face boxes; predicted
  faces are matched to annotated ones greedily by IoU, then the labels of matched faces are compared.
- ``--scenes DIR --boxes annotated``: the classifier alone, on crops of the annotated boxes, which
  separates classifier errors from detector errors.
- ``--faces DIR``: the classifier on a folder of face crops with ``splits.csv``; each image is cropped
  with the training geometry (``training.data.face_image_box``), so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.judgements import MIN_JUDGED_SIDE, Judgements, judgement_file, load_judgements
from training.matching import FloatBox, Tally, classification_metrics, float_box, short_side
from training.voc import AnnotationError, SceneAnnotation, load_scene_annotations
from vision.classifier import MaskClassifier, ModelFileError
from vision.detector import DetectorFileError
from vision.detector_factory import build_detector
from vision.image_files import ImageFileError, read_image
from vision.labels import LABELS, best_label, canonical_label
from vision.model_options import add_model_arguments, detector_spec
from vision.pipeline import MaskDetectionPipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IOU = 0.4
FACES_BATCH = 64
# Meaningless when the annotated boxes are classified: every face is "found".
DETECTION_KEYS = frozenset(
    {
        "predictions",
        "recall",
        "precision",
        "recall_40px",
        "recall_<20px",
        "recall_20-40px",
        "recall_>=40px",
        "recall_by_size",
        "recall_by_class",
        "found_and_right_40px",
        "matched_iou",
        "verified_precision",
        "judged",
        "unmatched_detections",
    }
)

IOU_HELP = (
    "minimum IoU for a predicted box to count as an annotated face (default 0.4). Lower than the usual "
    "0.5 because the res10 detector's box and the annotators' boxes differ in extent (res10 boxes are "
    "taller and include forehead and chin; annotators drew tight boxes, on small faces often a few "
    "pixels off), so a face that was plainly found can still overlap its annotation by only 0.4-0.5"
)

# (label, box, score) for each face a predictor reports in one image.
Prediction = tuple[str, FloatBox, float]
Predictor = Callable[[np.ndarray, SceneAnnotation], list[Prediction]]
# (label, score) for each of a batch of whole face images (``--faces``).
FaceClassifier = Callable[[Sequence[np.ndarray]], list[tuple[str, float]]]


class EvaluationError(RuntimeError):
    """Input that makes a figure impossible to compute honestly: a missing or unreadable file."""


def detected_faces(pipeline: MaskDetectionPipeline) -> Predictor:
    """Detector + classifier, as the server runs them; the annotation is not looked at."""

    def predict(image: np.ndarray, annotation: SceneAnnotation) -> list[Prediction]:
        return [(d.label, float_box(d.box), d.score) for d in pipeline.analyse(image)]

    return predict


def annotated_faces(classifier: MaskClassifier) -> Predictor:
    """The classifier alone on the annotated boxes: a perfect detector, to isolate classifier errors."""

    def predict(image: np.ndarray, annotation: SceneAnnotation) -> list[Prediction]:
        boxes = [face.box for face in annotation.faces]
        probabilities = classifier.predict_boxes(image, boxes)
        verdicts = [best_label(probs, classifier.labels) for probs in probabilities]
        return [(label, box, score) for box, (label, score) in zip(boxes, verdicts, strict=True)]

    return predict


def without_small_faces(annotation: SceneAnnotation, min_side: float) -> SceneAnnotation:
    """The annotation without the faces whose short side is under ``min_side`` pixels."""
    return dataclasses.replace(
        annotation, faces=tuple(face for face in annotation.faces if face.short_side >= min_side)
    )


@dataclass
class SceneRecords:
    """What `evaluate_scenes` collects photo by photo besides the tally: misclassified matched faces,
    unmatched detections and the verdicts on them, and the time spent predicting."""

    root: Path | None
    judgements: Judgements | None
    misclassified: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    verdicts: dict[str, int] = field(
        default_factory=lambda: {"face": 0, "not_face": 0, "unjudged": 0, "under_20px": 0}
    )
    seconds: float = 0.0

    def add_misclassified(
        self,
        image_path: Path,
        truths: list[tuple[str, FloatBox]],
        predictions: list[Prediction],
        matches: list[tuple[int, int]],
    ) -> None:
        for t, p in matches:
            true_label, truth_box = truths[t]
            label, box, score = predictions[p]
            if label != true_label:
                self.misclassified.append(
                    {
                        "image": _relative(image_path, self.root),
                        "box": [round(v, 1) for v in truth_box],
                        "predicted_box": [round(v, 1) for v in box],
                        "true": true_label,
                        "predicted": label,
                        "score": round(score, 4),
                        "short_side": round(short_side(truth_box), 1),
                    }
                )

    def add_unmatched(self, image_path: Path, predictions: list[Prediction], matched: set[int]) -> None:
        """Unmatched detections >= `MIN_JUDGED_SIDE`, with their verdict where one was judged."""
        key = _dataset_key(image_path, self.root)
        for p, (label, box, _) in enumerate(predictions):
            if p in matched:
                continue
            if short_side(box) < MIN_JUDGED_SIDE:
                self.verdicts["under_20px"] += 1
                continue
            verdict = self.judgements.verdict(key, box) if self.judgements is not None else None
            self.verdicts[verdict or "unjudged"] += 1
            self.unmatched.append(
                {"image": key, "box": [round(v, 1) for v in box], "label": label, "verdict": verdict}
            )


def evaluate_scenes(
    pairs: Sequence[tuple[Path, SceneAnnotation]],
    predictor: Predictor,
    min_iou: float = DEFAULT_IOU,
    root: Path | None = None,
    judgements: Judgements | None = None,
) -> dict[str, Any]:
    """Detection and classification figures over annotated scene photos.

    ``misclassified`` lists each matched face whose label is wrong (image path relative to ``root``),
    for the contact sheet of errors. ``unmatched_detections`` lists the predictions with a short side
    >= `MIN_JUDGED_SIDE` that match no annotation (image as ``DATASET/path``, the key of
    `training.judgements`); with ``judgements``, ``verified_precision`` counts the ones judged a face
    as correct, and ``judged`` says how many were judged each way and how many were not.
    """
    tally = Tally()
    records = SceneRecords(root, judgements)
    for image_path, annotation in pairs:
        image = _read(image_path)
        started = time.perf_counter()
        predictions = predictor(image, annotation)
        records.seconds += time.perf_counter() - started
        truths = [(face.label, face.box) for face in annotation.faces]
        matches = tally.add_image(truths, [(label, box) for label, box, _ in predictions], min_iou)
        records.add_misclassified(image_path, truths, predictions, matches)
        records.add_unmatched(image_path, predictions, {p for _, p in matches})
    return scene_report(tally, records, len(pairs))


def scene_report(tally: Tally, records: SceneRecords, images: int) -> dict[str, Any]:
    """The figures of `evaluate_scenes` from what it collected."""
    correct = sum(sum(row.values()) for row in tally.confusion.values())  # matched predictions
    judgements = records.judgements
    return {
        "images": images,
        "faces": len(tally.truths),
        "faces_by_size": tally.size_counts(),
        "predictions": tally.predictions,
        **tally.detection_metrics(),
        **tally.detail_metrics(),
        "verified_precision": (
            (correct + records.verdicts["face"]) / tally.predictions
            if judgements is not None and tally.predictions
            else None
        ),
        "judged": {"detector": judgements.detector if judgements is not None else None, **records.verdicts},
        **classification_metrics(tally.confusion),
        "confusion": tally.confusion,
        "ms_per_image": round(1000.0 * records.seconds / images, 2) if images else None,
        "misclassified": records.misclassified,
        "unmatched_detections": records.unmatched,
    }


def _dataset_key(path: Path, root: Path | None) -> str:
    """``DATASET/images/x.jpg``: an image's name across the scene datasets (a dataset folder holds
    ``images/``), whatever folder the report's paths are relative to."""
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name}"


def face_folder_entries(faces_dir: Path, split: str | None) -> list[tuple[Path, str]]:
    """(image path, label) of the crops listed in ``faces_dir/splits.csv``, optionally one split."""
    splits_file = faces_dir / "splits.csv"
    if not splits_file.is_file():
        raise EvaluationError(f"--faces needs {splits_file} (path,label,split,group)")
    with splits_file.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split is None or row["split"] == split]
    if not rows:
        raise EvaluationError(f"{splits_file} lists no images in split {split!r}")
    return [(faces_dir / row["path"], canonical_label(row["label"])) for row in rows]


def served_face_classifier(classifier: MaskClassifier) -> FaceClassifier:
    """The project's classifier on ``faces/`` images: each cut with the training geometry
    (``training.data.face_image_box``: the whole image is the margin crop), so the two cannot drift."""
    from training.data import face_image_box

    def classify(images: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        crops = [classifier.crop(image, face_image_box(image, classifier.info.margin)) for image in images]
        return [best_label(probs, classifier.labels) for probs in classifier.predict_crops(crops)]

    return classify


def evaluate_faces(
    entries: Sequence[tuple[Path, str]], classify: FaceClassifier, root: Path | None = None
) -> dict[str, Any]:
    """Classification figures over face crops; ``classify`` gives (label, score) per whole image
    (`served_face_classifier` for the project's model)."""
    confusion: dict[str, dict[str, int]] = {t: dict.fromkeys(LABELS, 0) for t in LABELS}
    misclassified: list[dict[str, Any]] = []
    seconds = 0.0
    for start in range(0, len(entries), FACES_BATCH):
        batch = entries[start : start + FACES_BATCH]
        images = [_read(path) for path, _ in batch]
        started = time.perf_counter()
        verdicts = classify(images)
        seconds += time.perf_counter() - started
        for (path, true_label), (label, score) in zip(batch, verdicts, strict=True):
            confusion[true_label][label] += 1
            if label != true_label:
                misclassified.append(
                    {
                        "image": _relative(path, root),
                        "box": None,
                        "true": true_label,
                        "predicted": label,
                        "score": round(score, 4),
                    }
                )
    return {
        "images": len(entries),
        "faces": len(entries),
        **classification_metrics(confusion),
        "confusion": confusion,
        "ms_per_image": round(1000.0 * seconds / len(entries), 2) if entries else None,
        "misclassified": misclassified,
    }


def _judgements_for(path: Path, detector: str) -> Judgements | None:
    """The judged unmatched boxes of this detector run, None when the file is absent or judged another."""
    if not path.is_file():
        return None
    judgements = load_judgements(path)
    if judgements.detector != detector:
        print(
            f"note: {path} judged {judgements.detector!r}, not {detector!r}: verified_precision not computed",
            file=sys.stderr,
        )
        return None
    return judgements


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageFileError as exc:
        raise EvaluationError(str(exc)) from exc


def _relative(path: Path, root: Path | None) -> str:
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return path.as_posix()


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100.0 * value:6.2f}%"


def format_report(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    settings = report.get("settings", {})
    lines = [
        "evaluation of " + ", ".join(f"{key}={value}" for key, value in settings.items()),
        f"images {report['images']}   faces {report['faces']}",
    ]
    if "recall" in report:
        lines.append(f"predicted faces {report['predictions']}")
        sizes = report.get("faces_by_size", {})
        for key in ("recall", "precision", "recall_40px"):
            lines.append(f"  {key:<26}{_percent(report[key])}")
        for name, count in sizes.items():
            lines.append(f"  {'recall ' + name:<26}{_percent(report['recall_' + name])}   ({count} faces)")
        for name, value in report["recall_by_size"].items():
            lines.append(f"  {'recall ' + name + ' px':<26}{_percent(value)}")
        for name, value in report["recall_by_class"].items():
            lines.append(f"  {'recall ' + name + ' >=40px':<26}{_percent(value)}")
        lines.append(f"  {'found_and_right_40px':<26}{_percent(report['found_and_right_40px'])}")
        lines.append(f"  {'matched_iou':<26}{report['matched_iou']}")
        judged = report["judged"]
        lines.append(f"  {'verified_precision':<26}{_percent(report['verified_precision'])}")
        lines.append(
            f"  unmatched detections: {judged['face']} judged faces, {judged['not_face']} judged not faces, "
            f"{judged['unjudged']} unjudged (>= 20 px), {judged['under_20px']} under 20 px (counted wrong)"
        )
        if judged["unjudged"]:
            lines.append(
                "  NOTE: unjudged boxes count as wrong in verified_precision (python -m training.judge)"
            )
    lines.append(f"classified (matched) faces {report['classified']}")
    for key in ("accuracy_3class", "accuracy_binary"):
        lines.append(f"  {key:<26}{_percent(report[key])}")
    macro = report["macro_f1"]
    lines.append(f"  {'macro_f1':<26}{'-' if macro is None else f'{macro:7.4f}'}")
    for label in LABELS:
        f1 = report.get(f"f1_{label}")
        lines.append(f"  {'f1 ' + label:<26}{'-' if f1 is None else f'{f1:7.4f}'}")
    width = max(len(label) for label in LABELS) + 2
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{label:>{width}}" for label in LABELS))
    for true_label in LABELS:
        row = report["confusion"][true_label]
        lines.append(f"{true_label:<{width}}" + "".join(f"{row[label]:>{width}}" for label in LABELS))
    if report.get("ms_per_image") is not None:
        lines.append(f"time per image {report['ms_per_image']} ms (noisy on a shared machine)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Measure the face detector and mask classifier on annotated photos or face crops.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--scenes",
        type=Path,
        action="append",
        help="dataset folder with images/ and annotations/ (VOC); repeat it to pool several datasets",
    )
    source.add_argument("--faces", type=Path, help="face-crop folder with splits.csv (path,label,split)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the report")
    parser.add_argument(
        "--split", help="train, val or test: images listed in splits.csv (for --scenes: beside DIR)"
    )
    parser.add_argument("--iou", type=float, default=DEFAULT_IOU, help=IOU_HELP)
    add_model_arguments(parser)
    parser.add_argument(
        "--boxes",
        choices=("detected", "annotated"),
        default="detected",
        help="with --scenes: classify detected faces (end to end, default) or the annotated boxes "
        "(classifier alone)",
    )
    parser.add_argument(
        "--judged",
        type=Path,
        help="verdicts on unmatched detections for verified_precision (default: "
        "models/eval/judged_DETECTOR.json, used when it names the same detector, size and threshold)",
    )
    parser.add_argument(
        "--min-side",
        type=float,
        default=0.0,
        help="with --boxes annotated: leave out annotated faces whose short side is under this many pixels "
        "(training's own val and test figures leave out faces under 8 px; default 0: every face)",
    )
    parser.add_argument(
        "--no-flip",
        action="store_true",
        help="classify each crop once, without its mirror image (as training's own figures are measured; "
        "the server and every default figure average both)",
    )
    parser.add_argument("--confusion-png", type=Path, help="also save the confusion matrix as an image")
    parser.add_argument("--errors-png", type=Path, help="also save a contact sheet of misclassified crops")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.min_side < 0:
        raise EvaluationError(f"--min-side must be 0 or more, not {args.min_side:g}")
    if args.min_side > 0 and (args.scenes is None or args.boxes != "annotated"):
        raise EvaluationError("--min-side applies to --scenes with --boxes annotated only")
    classifier = MaskClassifier(args.classifier, flip_average=not args.no_flip)
    settings: dict[str, Any] = {
        "classifier": _relative(args.classifier.resolve(), REPO_ROOT),
        "backend": classifier.backend,
        "split": args.split,
        "flip_average": classifier.flip_average,
    }
    if args.faces is not None:
        root = args.faces
        settings["faces"] = args.faces.as_posix()
        entries = face_folder_entries(args.faces, args.split)
        report = evaluate_faces(entries, served_face_classifier(classifier), root=root)
    else:
        # Several datasets pool into one report (both scene test splits at once); image paths are then
        # relative to their common folder.
        root = args.scenes[0] if len(args.scenes) == 1 else args.scenes[0].parent
        settings.update(scenes=",".join(folder.as_posix() for folder in args.scenes), boxes=args.boxes)
        try:
            pairs = [pair for folder in args.scenes for pair in load_scene_annotations(folder, args.split)]
        except (FileNotFoundError, ValueError) as exc:
            raise EvaluationError(str(exc)) from exc
        judgements = None
        if args.boxes == "annotated":
            if args.min_side > 0:
                settings["min_side"] = args.min_side
                pairs = [(path, without_small_faces(annotation, args.min_side)) for path, annotation in pairs]
            predictor = annotated_faces(classifier)
        else:
            spec = detector_spec(args)
            detector = build_detector(spec)
            settings.update(
                iou=args.iou,
                detector=spec.name,
                confidence=spec.resolved_confidence,
                detector_size="{}x{}".format(*spec.resolved_input_size),
            )
            predictor = detected_faces(MaskDetectionPipeline(detector, classifier))
            judgements = _judgements_for(args.judged or judgement_file(spec.name), spec.describe())
            if judgements is not None:
                settings["judged"] = _relative(args.judged or judgement_file(spec.name), REPO_ROOT)
        report = evaluate_scenes(pairs, predictor, args.iou, root=root, judgements=judgements)
        if args.boxes == "annotated":
            report = {key: value for key, value in report.items() if key not in DETECTION_KEYS}
    report = {"settings": settings, **report}
    if args.confusion_png is not None or args.errors_png is not None:
        from training.eval_figures import save_confusion_png, save_contact_sheet

        title = f"{root.name} ({args.split or 'all'})"
        if args.scenes is not None:
            title += ", end to end" if args.boxes == "detected" else ", annotated boxes"
        if args.confusion_png is not None:
            save_confusion_png(report["confusion"], args.confusion_png, title)
        if args.errors_png is not None:
            save_contact_sheet(report["misclassified"], root, classifier, args.errors_png, title)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (EvaluationError, AnnotationError, ModelFileError, DetectorFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
