"""Face crops for training, cut once with the inference geometry and cached as JPEG bytes.

Every crop is stored with extra context around the classifier's region (``CropGeometry.context``),
so that augmentation can move and rescale the region like a detector box would, without decoding
the scene photos again. The cache is one ``.npz`` file without pickled objects.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from training.voc import load_scene_annotations
from vision.crops import Box, crop_square, square_crop_box
from vision.labels import LABELS, canonical_label

SPLITS: tuple[str, ...] = ("train", "val", "test")
SCENE_DATASETS: tuple[str, ...] = ("andrewmvd", "jolignier")
SOURCES: tuple[str, ...] = ("faces", *SCENE_DATASETS)
CACHE_VERSION = 2


@dataclass(frozen=True)
class CropGeometry:
    """How crops are cut: the inference crop (margin) plus context stored around it.

    ``min_face`` drops scene faces whose short side is below it: at a few pixels the label
    cannot be seen, and the detector finds no such faces anyway.
    """

    margin: float = 0.15
    context: float = 1.25
    stored_size: int = 160
    min_face: float = 8.0
    jpeg_quality: int = 80

    @classmethod
    def for_input(cls, input_size: int) -> CropGeometry:
        """The geometry whose centre region is ``input_size`` stored pixels, so that a classifier of that
        input is trained on crops at its own resolution, never on a smaller region scaled up."""
        if input_size < 16:
            raise ValueError(f"classifier input of {input_size} px is too small")
        return cls(stored_size=round(input_size * cls.context))


@dataclass(frozen=True)
class CropRecord:
    name: str
    label: str
    split: str
    source: str
    crop: np.ndarray


def context_region(box: Box, geometry: CropGeometry) -> Box:
    """The inference crop region of ``box``, enlarged by ``geometry.context`` about its centre."""
    x0, y0, x1, y1 = square_crop_box(box, geometry.margin)
    half = (x1 - x0) * geometry.context / 2.0
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return (cx - half, cy - half, cx + half, cy + half)


def face_image_box(image: np.ndarray, margin: float) -> Box:
    """The face box that a ``faces/`` image stands for: the image is taken as the margin crop.

    These images are face crops already, from tight to head-and-shoulders; treating the whole image
    (made square along its long side) as the classifier's region adds no second margin, so the border
    is replicated only along the short side. Scale jitter in training covers the spread of framing.
    """
    height, width = image.shape[:2]
    side = max(width, height) / (1.0 + 2.0 * margin)
    cx, cy = width / 2.0, height / 2.0
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return image


def face_folder_crops(
    faces_dir: Path, geometry: CropGeometry, limit_per_split: int | None = None
) -> Iterator[CropRecord]:
    """Crops of ``faces/`` listed in its ``splits.csv`` (path,label,split,group)."""
    taken: dict[str, int] = {}
    with (faces_dir / "splits.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            split = row["split"]
            if limit_per_split is not None and taken.get(split, 0) >= limit_per_split:
                continue
            taken[split] = taken.get(split, 0) + 1
            image = _read_image(faces_dir / row["path"])
            region = context_region(face_image_box(image, geometry.margin), geometry)
            yield CropRecord(
                name=f"faces/{row['path']}",
                label=canonical_label(row["label"]),
                split=split,
                source="faces",
                crop=crop_square(image, region, geometry.stored_size),
            )


def scene_crops(
    dataset_dir: Path, geometry: CropGeometry, limit_per_split: int | None = None
) -> Iterator[CropRecord]:
    """Crops of every annotated face (short side >= ``min_face``) of a scene dataset, per split."""
    for split in SPLITS:
        pairs = load_scene_annotations(dataset_dir, split)
        taken = 0
        for image_path, annotation in pairs:
            if limit_per_split is not None and taken >= limit_per_split:
                break
            faces = [face for face in annotation.faces if face.short_side >= geometry.min_face]
            if not faces:
                continue
            image = _read_image(image_path)
            for index, face in enumerate(faces):
                taken += 1
                yield CropRecord(
                    name=f"{dataset_dir.name}/{image_path.name}#{index}",
                    label=face.label,
                    split=split,
                    source=dataset_dir.name,
                    crop=crop_square(image, context_region(face.box, geometry), geometry.stored_size),
                )


@dataclass
class CropCache:
    """All crops as JPEG bytes with their label index, split, source and name."""

    geometry: CropGeometry
    encoded: list[bytes]
    labels: np.ndarray
    splits: np.ndarray
    sources: np.ndarray
    names: np.ndarray

    def __len__(self) -> int:
        return len(self.encoded)

    def indices(self, split: str, source: str | None = None) -> np.ndarray:
        mask = self.splits == split
        if source is not None:
            mask &= self.sources == source
        return np.flatnonzero(mask)

    def decode(self, index: int) -> np.ndarray:
        """The stored BGR crop (``stored_size`` square) of one entry."""
        buffer = np.frombuffer(self.encoded[index], dtype=np.uint8)
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"crop cache entry {index} ({self.names[index]}) is not a JPEG")
        return image

    def class_counts(self, split: str) -> dict[str, int]:
        chosen = self.labels[self.indices(split)]
        return {label: int((chosen == i).sum()) for i, label in enumerate(LABELS)}

    def save(self, path: Path) -> None:
        lengths = np.array([len(item) for item in self.encoded], dtype=np.int64)
        meta = {"version": CACHE_VERSION, "labels": list(LABELS), "geometry": asdict(self.geometry)}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez(
            temporary,
            meta=np.array(json.dumps(meta)),
            jpeg=np.frombuffer(b"".join(self.encoded), dtype=np.uint8),
            lengths=lengths,
            labels=self.labels,
            splits=self.splits,
            sources=self.sources,
            names=self.names,
        )
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> CropCache:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta.get("version") != CACHE_VERSION or meta.get("labels") != list(LABELS):
                raise ValueError(f"{path} was written by another version of the crop cache")
            data = archive["jpeg"].tobytes()
            offsets = np.concatenate([[0], np.cumsum(archive["lengths"])])
            encoded = [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
            return cls(
                geometry=CropGeometry(**meta["geometry"]),
                encoded=encoded,
                labels=archive["labels"].astype(np.int64),
                splits=archive["splits"].astype(str),
                sources=archive["sources"].astype(str),
                names=archive["names"].astype(str),
            )


def build_crop_cache(
    data_dir: Path,
    geometry: CropGeometry,
    limit_per_split: int | None = None,
    progress: Callable[[Iterator[CropRecord]], Iterator[CropRecord]] | None = None,
) -> CropCache:
    """Cut every crop of ``faces/`` and both scene datasets; ``limit_per_split`` is for quick tests."""
    records: Iterator[CropRecord] = _all_records(data_dir, geometry, limit_per_split)
    if progress is not None:
        records = progress(records)
    encoded, labels, splits, sources, names = [], [], [], [], []
    params = [cv2.IMWRITE_JPEG_QUALITY, geometry.jpeg_quality]
    for record in records:
        ok, buffer = cv2.imencode(".jpg", record.crop, params)
        if not ok:
            raise OSError(f"cannot encode crop {record.name}")
        encoded.append(buffer.tobytes())
        labels.append(LABELS.index(record.label))
        splits.append(record.split)
        sources.append(record.source)
        names.append(record.name)
    return CropCache(
        geometry=geometry,
        encoded=encoded,
        labels=np.array(labels, dtype=np.int64),
        splits=np.array(splits),
        sources=np.array(sources),
        names=np.array(names),
    )


def _all_records(data_dir: Path, geometry: CropGeometry, limit_per_split: int | None) -> Iterator[CropRecord]:
    yield from face_folder_crops(data_dir / "faces", geometry, limit_per_split)
    for dataset in SCENE_DATASETS:
        yield from scene_crops(data_dir / "scenes" / dataset, geometry, limit_per_split)


class CacheGeometryError(ValueError):
    """A cache file was cut with another geometry and may not be replaced."""


def load_or_build_cache(
    cache_path: Path, data_dir: Path, geometry: CropGeometry, replace_other: bool = True
) -> CropCache:
    """The cache at ``cache_path`` if it was cut with ``geometry``, else a fresh one from ``data_dir``
    saved there. A file cut with another geometry is replaced only with ``replace_other``; otherwise
    `CacheGeometryError` (a file the user named may be the cache of another input size)."""
    if cache_path.is_file():
        cache = CropCache.load(cache_path)
        if cache.geometry == geometry:
            return cache
        if not replace_other:
            raise CacheGeometryError(
                f"{cache_path} was cut with {cache.geometry}, not {geometry}: another input size?"
            )
    if not (data_dir / "faces" / "splits.csv").is_file():
        raise FileNotFoundError(f"no crop cache at {cache_path} and no data at {data_dir} to build one")
    from tqdm import tqdm

    cache = build_crop_cache(
        data_dir, geometry, progress=lambda it: tqdm(it, desc="cutting crops", unit="crop")
    )
    cache.save(cache_path)
    return cache


CropTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class CropDataset(Dataset[tuple[torch.Tensor, int]]):
    """Crops of ``indices`` through ``transform`` as float CHW RGB in [0, 1], with their label index.

    Each item draws its own generator seed from torch's RNG, which DataLoader seeds per worker and
    epoch, so augmentation differs between epochs yet repeats for a fixed ``--seed``.
    """

    def __init__(
        self, cache: CropCache, indices: Sequence[int] | np.ndarray, transform: CropTransform
    ) -> None:
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        index = int(self.indices[position])
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        crop = self.transform(self.cache.decode(index), rng)
        tensor = torch.from_numpy(np.ascontiguousarray(crop[..., ::-1].transpose(2, 0, 1)))
        return tensor.float().div_(255.0), int(self.cache.labels[index])
