"""Pascal VOC annotations of the scene datasets, and their train/val/test splits."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from vision.labels import canonical_label


class AnnotationError(ValueError):
    """A VOC file that cannot be read as an annotation."""


@dataclass(frozen=True)
class AnnotatedFace:
    label: str
    box: tuple[float, float, float, float]

    @property
    def short_side(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class SceneAnnotation:
    filename: str
    width: int
    height: int
    faces: tuple[AnnotatedFace, ...]


def _number(node: ET.Element, tag: str, path: Path) -> float:
    child = node.find(tag)
    if child is None or child.text is None:
        raise AnnotationError(f"{path}: <{tag}> missing")
    try:
        return float(child.text.strip())
    except ValueError as exc:
        raise AnnotationError(f"{path}: <{tag}> is not a number: {child.text!r}") from exc


def parse_voc(path: str | Path) -> SceneAnnotation:
    """Read one VOC XML file; class names are mapped to the project's three labels."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AnnotationError(f"{path}: not a readable VOC XML file: {exc}") from exc
    filename = (root.findtext("filename") or path.with_suffix(".jpg").name).strip()
    size = root.find("size")
    width = int(_number(size, "width", path)) if size is not None else 0
    height = int(_number(size, "height", path)) if size is not None else 0
    faces = []
    for obj in root.iter("object"):
        name = obj.findtext("name")
        bndbox = obj.find("bndbox")
        if name is None or bndbox is None:
            raise AnnotationError(f"{path}: <object> without <name> or <bndbox>")
        try:
            label = canonical_label(name)
        except ValueError as exc:
            raise AnnotationError(f"{path}: {exc}") from exc
        box = tuple(_number(bndbox, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        faces.append(AnnotatedFace(label=label, box=(box[0], box[1], box[2], box[3])))
    return SceneAnnotation(filename=filename, width=width, height=height, faces=tuple(faces))


def scene_split(dataset_dir: Path, split: str | None) -> list[str] | None:
    """Image names of ``split`` from the splits.csv beside the dataset folder, or None for all.

    ``scenes/splits.csv`` lists ``dataset,image,split``; the dataset is the folder's name.
    """
    if split is None:
        return None
    splits_file = dataset_dir.parent / "splits.csv"
    if not splits_file.is_file():
        raise FileNotFoundError(f"--split {split} needs {splits_file}, which does not exist")
    with splits_file.open(newline="") as handle:
        names = [
            row["image"]
            for row in csv.DictReader(handle)
            if row["dataset"] == dataset_dir.name and row["split"] == split
        ]
    if not names:
        raise ValueError(f"{splits_file} lists no images of dataset {dataset_dir.name!r} in split {split!r}")
    return names


def load_scene_annotations(
    dataset_dir: str | Path, split: str | None = None
) -> list[tuple[Path, SceneAnnotation]]:
    """(image path, annotation) for every annotated image of a dataset folder, optionally one split."""
    dataset_dir = Path(dataset_dir)
    images_dir, annotations_dir = dataset_dir / "images", dataset_dir / "annotations"
    if not images_dir.is_dir() or not annotations_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} must hold images/ and annotations/ (Pascal VOC)")
    wanted = scene_split(dataset_dir, split)
    names = sorted(wanted) if wanted is not None else sorted(p.name for p in images_dir.glob("*.jpg"))
    pairs = []
    for name in names:
        xml_path = annotations_dir / (Path(name).stem + ".xml")
        pairs.append((images_dir / name, parse_voc(xml_path)))
    return pairs
