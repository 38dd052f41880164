"""Flip-averaged classification: mirror-invariant, and different from a single pass."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.classifier import MaskClassifier
from vision.image_files import read_image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mask_classifier.onnx"
FACES = ROOT.parent / "shared" / "data" / "faces"


@pytest.fixture(scope="module")
def real_crops() -> list[np.ndarray]:
    if not MODEL.is_file():
        pytest.skip(f"trained classifier {MODEL} is missing")
    if not FACES.is_dir():
        pytest.skip(f"face crops not found at {FACES} (../shared/data is absent)")
    paths = (
        sorted((FACES / "without_mask").glob("*.jpg"))[:4] + sorted((FACES / "with_mask").glob("*.jpg"))[:4]
    )
    side = MaskClassifier(MODEL).input_size  # the committed model's (160 px since issue 19)
    return [cv2.resize(read_image(path), (side, side), interpolation=cv2.INTER_AREA) for path in paths]


def test_flip_average_is_mirror_invariant(real_crops: list[np.ndarray]) -> None:
    classifier = MaskClassifier(MODEL)
    mirrored = [np.ascontiguousarray(crop[:, ::-1]) for crop in real_crops]
    np.testing.assert_allclose(
        classifier.predict_crops(real_crops), classifier.predict_crops(mirrored), atol=1e-5
    )


def test_flip_average_is_the_mean_of_both_passes(real_crops: list[np.ndarray]) -> None:
    single = MaskClassifier(MODEL, flip_average=False)
    averaged = MaskClassifier(MODEL).predict_crops(real_crops)
    mirrored = [np.ascontiguousarray(crop[:, ::-1]) for crop in real_crops]
    expected = (single.predict_crops(real_crops) + single.predict_crops(mirrored)) / 2.0
    np.testing.assert_allclose(averaged, expected, atol=1e-5)
    assert np.abs(averaged - single.predict_crops(real_crops)).max() > 1e-4
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-5)
