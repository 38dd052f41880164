"""Judge, once by a look, the detections that match no annotated face (see `training.judgements`).

``collect`` runs a detector over the scene test splits, keeps every unmatched detection with a short
side >= 20 px, carries over the verdicts already in the detector's judgement file, and writes the file
plus numbered contact sheets (the box drawn in its surroundings). ``mark`` records the look: every
unjudged box is a face except the numbers given. The evaluation then reads the file
(``verified_precision``).

    python -m training.judge collect
    python -m training.judge mark --not-faces 12 40
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from training.evaluate import DEFAULT_IOU, REPO_ROOT, Prediction, evaluate_scenes
from training.judgements import Judgement, Judgements, judgement_file, load_judgements, save_judgements
from training.matching import float_box
from training.voc import SceneAnnotation, load_scene_annotations
from vision.detector import FaceDetector
from vision.detector_factory import build_detector
from vision.image_files import read_image
from vision.model_options import add_model_arguments, detector_spec

SCENES = REPO_ROOT.parent / "shared" / "data" / "scenes"
DATASETS = ("andrewmvd", "jolignier")
TILE = 192
COLUMNS = 6
PER_SHEET = 24


def detector_only(detector: FaceDetector) -> object:
    def predict(image: np.ndarray, annotation: SceneAnnotation) -> list[Prediction]:
        return [("with_mask", float_box(face.box), face.confidence) for face in detector.detect(image)]

    return predict


def collect(args: argparse.Namespace) -> int:
    spec = detector_spec(args)
    detector = build_detector(spec)
    path = args.file or judgement_file(spec.name)
    previous = load_judgements(path) if path.is_file() else None
    if previous is not None and previous.detector != spec.describe():
        print(f"{path} judged {previous.detector!r}; starting over for {spec.describe()!r}")
        previous = None
    entries: list[Judgement] = []
    for name in DATASETS:
        root = args.scenes / name
        report = evaluate_scenes(
            load_scene_annotations(root, args.split),
            detector_only(detector),  # type: ignore[arg-type]
            DEFAULT_IOU,
            root=root,
            judgements=previous,
        )
        for item in report["unmatched_detections"]:
            entries.append(Judgement(item["image"], tuple(item["box"]), item["verdict"]))
    judgements = Judgements(detector=spec.describe(), entries=tuple(entries))
    save_judgements(judgements, path)
    sheets = save_sheets(judgements, args.scenes, path.with_suffix(""))
    unjudged = sum(entry.verdict is None for entry in entries)
    print(f"wrote {path}: {len(entries)} unmatched boxes >= 20 px, {unjudged} unjudged; sheets {sheets}")
    return 0


def tile(image: np.ndarray, box: Sequence[float], number: int) -> np.ndarray:
    """The box with as much again around it, the box drawn, its number below."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * 2.0
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    scale = TILE / side
    matrix = np.array([[scale, 0.0, (side / 2 - cx) * scale], [0.0, scale, (side / 2 - cy) * scale]])
    patch = cv2.warpAffine(image, matrix, (TILE, TILE), borderMode=cv2.BORDER_CONSTANT)
    corner0 = (round((x0 - cx + side / 2) * scale), round((y0 - cy + side / 2) * scale))
    corner1 = (round((x1 - cx + side / 2) * scale), round((y1 - cy + side / 2) * scale))
    cv2.rectangle(patch, corner0, corner1, (0, 255, 255), 1)
    caption = np.full((20, TILE, 3), 255, dtype=np.uint8)
    cv2.putText(caption, str(number), (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([patch, caption])


def save_sheets(judgements: Judgements, scenes: Path, stem: Path, suffix: str = ".jpg") -> list[Path]:
    """Numbered sheets ``STEM_1.jpg``...; ``suffix`` ``.png`` for lossless ones."""
    paths = []
    for start in range(0, len(judgements.entries), PER_SHEET):
        chunk = judgements.entries[start : start + PER_SHEET]
        tiles = [tile(read_image(scenes / e.image), e.box, start + i) for i, e in enumerate(chunk)]
        rows = -(-len(tiles) // COLUMNS)
        sheet = np.full((rows * (TILE + 20), COLUMNS * (TILE), 3), 255, dtype=np.uint8)
        for index, picture in enumerate(tiles):
            row, column = divmod(index, COLUMNS)
            sheet[row * (TILE + 20) : (row + 1) * (TILE + 20), column * TILE : (column + 1) * TILE] = picture
        path = Path(f"{stem}_{start // PER_SHEET + 1}{suffix}")
        options = [cv2.IMWRITE_PNG_COMPRESSION, 9] if suffix == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 85]
        if not cv2.imwrite(str(path), sheet, options):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


def mark(args: argparse.Namespace) -> int:
    path = args.file or judgement_file(args.detector)
    judgements = load_judgements(path)
    not_faces = set(args.not_faces)
    entries = tuple(
        Judgement(e.image, e.box, e.verdict or ("not_face" if i in not_faces else "face"))
        for i, e in enumerate(judgements.entries)
    )
    save_judgements(Judgements(judgements.detector, entries), path)
    print(f"{path}: {sum(e.verdict == 'not_face' for e in entries)} not faces of {len(entries)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.judge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect", help="run the detector, write the file and contact sheets")
    gather.add_argument("--scenes", type=Path, default=SCENES)
    gather.add_argument("--split", default="test")
    gather.add_argument("--file", type=Path)
    add_model_arguments(gather)
    record = commands.add_parser("mark", help="every unjudged box is a face, but these numbers")
    record.add_argument("--detector", default="yunet")
    record.add_argument("--file", type=Path)
    record.add_argument("--not-faces", type=int, nargs="*", default=[])
    args = parser.parse_args(argv)
    return collect(args) if args.command == "collect" else mark(args)


if __name__ == "__main__":
    sys.exit(main())
