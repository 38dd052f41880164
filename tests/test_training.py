"""Training: crop geometry and cache, augmentation, class balance, and a smoke run on real crops."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.augment import augment_crop, centre_crop
from training.data import (
    CropCache,
    CropGeometry,
    build_crop_cache,
    context_region,
    face_image_box,
    scene_crops,
)
from training.train import DEFAULT_CACHE, class_sample_weights, default_cache, main, warmup_cosine
from vision.classifier import MaskClassifier
from vision.crops import crop_face, crop_square
from vision.labels import LABELS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "faces" / "splits.csv").is_file(), reason=f"real face data not found at {DATA}"
)


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random BGR image, so that resampling differences stay small and measurable."""
    noise = np.random.default_rng(seed).integers(
        0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8
    )
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def write_voc(
    path: Path, filename: str, size: tuple[int, int], objects: Sequence[tuple[str, tuple[int, ...]]]
) -> None:
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    path.write_text(
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{body}</annotation>"
    )


def make_scene_dataset(root: Path, name: str) -> Path:
    """A three-image VOC dataset, one image per split, using both datasets' names of the third class."""
    dataset = root / name
    (dataset / "images").mkdir(parents=True)
    (dataset / "annotations").mkdir()
    objects = {
        "a.jpg": [("mask_weared_incorrect", (10, 10, 60, 70)), ("with_mask", (100, 20, 150, 80))],
        "b.jpg": [("with_incorrect_mask", (30, 30, 90, 100)), ("without_mask", (5, 5, 9, 9))],
        "c.jpg": [("with_mask", (40, 20, 80, 70))],
    }
    for index, (filename, faces) in enumerate(objects.items()):
        cv2.imwrite(str(dataset / "images" / filename), textured_image(120, 200, seed=index))
        write_voc(dataset / "annotations" / (Path(filename).stem + ".xml"), filename, (200, 120), faces)
    with (root / "splits.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "image", "split"])
        writer.writerows([[name, "a.jpg", "train"], [name, "b.jpg", "test"], [name, "c.jpg", "val"]])
    return dataset


def test_both_third_class_names_become_mask_worn_incorrectly_and_tiny_faces_are_dropped(
    tmp_path: Path,
) -> None:
    dataset = make_scene_dataset(tmp_path, "jolignier")
    records = list(scene_crops(dataset, CropGeometry()))
    by_split = {(r.split, r.label) for r in records}
    assert by_split == {
        ("train", "mask_worn_incorrectly"),
        ("train", "with_mask"),
        ("val", "with_mask"),
        ("test", "mask_worn_incorrectly"),
    }, "the 4 px face must be dropped and both third-class names mapped"
    assert all(r.crop.shape == (160, 160, 3) and r.crop.dtype == np.uint8 for r in records)


def test_centre_of_a_stored_crop_is_the_inference_crop() -> None:
    image = textured_image(480, 640)
    box = (200.0, 150.0, 330.0, 310.0)
    geometry = CropGeometry()
    stored = crop_square(image, context_region(box, geometry), geometry.stored_size)
    from_cache = centre_crop(stored, 128, geometry.context).astype(np.float32)
    at_inference = crop_face(image, box, 128, geometry.margin).astype(np.float32)
    assert from_cache.shape == at_inference.shape == (128, 128, 3)
    assert np.abs(from_cache - at_inference).mean() < 3.0


def test_a_larger_input_is_trained_on_crops_cut_at_its_own_size() -> None:
    assert CropGeometry.for_input(128) == CropGeometry()
    assert default_cache(CropGeometry.for_input(128)) == DEFAULT_CACHE
    geometry = CropGeometry.for_input(160)
    # The inference region is the centre 1/context of the stored crop: 200 / 1.25 = 160 px, no resampling.
    assert geometry.stored_size == 200 and geometry.stored_size / geometry.context == 160
    assert default_cache(geometry) == DEFAULT_CACHE.with_name("crops_200.npz")
    image = textured_image(480, 640, seed=3)
    box = (200.0, 150.0, 330.0, 310.0)
    stored = crop_square(image, context_region(box, geometry), geometry.stored_size)
    from_cache = centre_crop(stored, 160, geometry.context).astype(np.float32)
    at_inference = crop_face(image, box, 160, geometry.margin).astype(np.float32)
    assert from_cache.shape == at_inference.shape == (160, 160, 3)
    assert np.abs(from_cache - at_inference).mean() < 3.0
    with pytest.raises(ValueError, match="too small"):
        CropGeometry.for_input(8)


def test_face_image_box_makes_the_whole_image_the_margin_crop() -> None:
    image = np.zeros((100, 80, 3), dtype=np.uint8)
    x0, y0, x1, y1 = context_region(face_image_box(image, 0.15), CropGeometry(context=1.0))
    assert (x1 - x0, y1 - y0) == pytest.approx((100.0, 100.0))
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((40.0, 50.0))


def test_augmented_crops_have_the_input_shape_vary_and_repeat_per_seed() -> None:
    stored = textured_image(160, 160)
    first = [augment_crop(stored, np.random.default_rng(seed), 128, 1.25) for seed in range(20)]
    again = [augment_crop(stored, np.random.default_rng(seed), 128, 1.25) for seed in range(20)]
    assert all(crop.shape == (128, 128, 3) and crop.dtype == np.uint8 for crop in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert len({crop.tobytes() for crop in first}) == 20
    assert augment_crop(stored, np.random.default_rng(0), 96, 1.25).shape == (96, 96, 3)


def test_cache_survives_a_round_trip(tmp_path: Path) -> None:
    dataset = make_scene_dataset(tmp_path / "scenes", "andrewmvd")
    records = list(scene_crops(dataset, CropGeometry()))
    encoded = [cv2.imencode(".jpg", r.crop)[1].tobytes() for r in records]
    cache = CropCache(
        geometry=CropGeometry(),
        encoded=encoded,
        labels=np.array([LABELS.index(r.label) for r in records]),
        splits=np.array([r.split for r in records]),
        sources=np.array([r.source for r in records]),
        names=np.array([r.name for r in records]),
    )
    cache.save(tmp_path / "cache.npz")
    loaded = CropCache.load(tmp_path / "cache.npz")
    assert loaded.geometry == cache.geometry
    assert list(loaded.names) == list(cache.names)
    assert loaded.class_counts("test") == {"with_mask": 0, "without_mask": 0, "mask_worn_incorrectly": 1}
    assert loaded.decode(0).shape == (160, 160, 3)
    assert list(loaded.indices("train", "andrewmvd")) == [0, 1]


def test_balanced_sampling_weights() -> None:
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    for power, expected in ((0.0, [0.9, 0.09, 0.01]), (1.0, [1 / 3, 1 / 3, 1 / 3])):
        weights = class_sample_weights(labels, power)
        mass = [weights[labels == c].sum() / weights.sum() for c in range(3)]
        assert mass == pytest.approx(expected)


def test_learning_rate_warms_up_then_decays() -> None:
    factors = [warmup_cosine(step, warmup=10, total=100) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == pytest.approx(1.0)
    assert factors[-1] < 0.02 and all(a >= b for a, b in itertools.pairwise(factors[10:]))


@needs_data
def test_splits_never_mix() -> None:
    with (DATA / "faces" / "splits.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    split_of_group: dict[str, set[str]] = {}
    for row in rows:
        split_of_group.setdefault(row["group"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of_group.values())
    cache = build_crop_cache(DATA, CropGeometry(), limit_per_split=15)
    images = {
        split: {name.split("#")[0] for name in cache.names[cache.indices(split)]}
        for split in ("train", "test")
    }
    assert images["train"] and images["test"] and not images["train"] & images["test"]
    assert set(cache.sources) == {"faces", "andrewmvd", "jolignier"}


@needs_data
@pytest.mark.slow
def test_smoke_training_resumes_and_exports_matching_onnx(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.npz"
    # Cut for the 64-px input of this run: a cache of another input size is refused, not overwritten.
    build_crop_cache(DATA, CropGeometry.for_input(64), limit_per_split=6).save(cache_path)
    out, state = tmp_path / "model", tmp_path / "state.pt"
    common = ["--cache", str(cache_path), "--out", str(out), "--state", str(state), "--device", "cpu"]
    common += ["--workers", "0", "--batch-size", "8", "--input-size", "64", "--epochs", "2", "--threads", "2"]
    cut_for = cache_path.stat().st_mtime_ns
    other_size = [arg if arg != "64" else "96" for arg in common]
    with pytest.raises(SystemExit, match=r"another input size.*--input-size 96"):
        main([*other_size, "--max-steps", "1"])
    assert cache_path.stat().st_mtime_ns == cut_for
    main([*common, "--max-steps", "2"])
    first = json.loads((out / "training_metrics.json").read_text())
    assert first["epochs_run"] == 1 and first["stop_reason"] == "max_steps"
    assert np.isfinite(first["history"][0]["train_loss"])
    assert (
        state.is_file() and (out / "mask_classifier.pt").is_file() and (out / "training_curve.png").is_file()
    )

    # The second epoch in bf16 autocast, as a CPU with AMX trains fastest; the first stays as it was.
    main([*common, "--max-steps", "4", "--resume", "--precision", "bf16"])
    resumed = json.loads((out / "training_metrics.json").read_text())
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == first["history"][0]
    assert np.isfinite(resumed["history"][1]["train_loss"])
    assert [row["precision"] for row in resumed["history"]] == ["fp32", "bf16"]
    assert (first["precision"], resumed["precision"]) == ("fp32", "fp32,bf16")

    torch_model = MaskClassifier(out / "mask_classifier.pt")
    onnx_model = MaskClassifier(out / "mask_classifier.onnx")
    assert onnx_model.info == torch_model.info and onnx_model.input_size == 64
    cache = CropCache.load(cache_path)
    crops = [centre_crop(cache.decode(i), 64, cache.geometry.context) for i in cache.indices("test")]
    difference = np.abs(torch_model.predict_crops(crops) - onnx_model.predict_crops(crops)).max()
    assert difference < 1e-4
