"""Camera-like augmentation of stored face crops, in numpy and OpenCV so it runs in loader workers.

A stored crop holds the classifier's region at its centre with context around it (see
``training.data.CropGeometry``). Training cuts a jittered region out of it, as a detector box that is
0.8-1.2x the annotated box and shifted would, then degrades it as cheap cameras and small faces do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.8, 1.2)
    shift: float = 0.08
    rotation_degrees: float = 10.0
    flip_probability: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    channel_gain: float = 0.08
    grayscale_probability: float = 0.05
    low_resolution_probability: float = 0.25
    low_resolution_min_side: int = 16
    blur_probability: float = 0.15
    noise_probability: float = 0.15
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 90)


def _warp(
    stored: np.ndarray, centre: tuple[float, float], side: float, angle: float, out_size: int
) -> np.ndarray:
    """Resample the square of ``side`` at ``centre`` (stored pixels), rotated by ``angle`` degrees."""
    matrix = cv2.getRotationMatrix2D(centre, angle, out_size / side)
    matrix[0, 2] += out_size / 2.0 - centre[0]
    matrix[1, 2] += out_size / 2.0 - centre[1]
    return cv2.warpAffine(
        stored, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def centre_crop(stored: np.ndarray, out_size: int, context: float) -> np.ndarray:
    """The exact inference region of a stored crop, resized to ``out_size``: used for val and test."""
    side = round(stored.shape[0] / context)
    start = (stored.shape[0] - side) // 2
    region = stored[start : start + side, start : start + side]
    if side == out_size:
        return np.ascontiguousarray(region)
    interpolation = cv2.INTER_AREA if side > out_size else cv2.INTER_LINEAR
    return cv2.resize(region, (out_size, out_size), interpolation=interpolation)


def _photometric(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    image = crop.astype(np.float32)
    image *= 1.0 + rng.uniform(-config.brightness, config.brightness)
    image *= (1.0 + rng.uniform(-config.channel_gain, config.channel_gain, size=3)).astype(np.float32)
    gray = image @ np.array([0.114, 0.587, 0.299], dtype=np.float32)
    mean = float(gray.mean())
    image = (image - mean) * (1.0 + rng.uniform(-config.contrast, config.contrast)) + mean
    saturation = (
        0.0 if rng.random() < config.grayscale_probability else 1.0 + rng.uniform(-1, 1) * config.saturation
    )
    gray = (image @ np.array([0.114, 0.587, 0.299], dtype=np.float32))[..., None]
    image = gray + (image - gray) * saturation
    if rng.random() < config.noise_probability:
        image += rng.normal(0.0, rng.uniform(*config.noise_sigma), size=image.shape).astype(np.float32)
    return np.clip(image, 0.0, 255.0).astype(np.uint8)


def _degrade(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    size = crop.shape[0]
    if rng.random() < config.low_resolution_probability and size > config.low_resolution_min_side:
        small = int(rng.integers(config.low_resolution_min_side, size))
        crop = cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA)
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < config.blur_probability:
        kernel = int(rng.choice([3, 5]))
        crop = cv2.GaussianBlur(crop, (kernel, kernel), 0)
    if rng.random() < config.jpeg_probability:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, buffer = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            crop = decoded
    return crop


def augment_crop(
    stored: np.ndarray,
    rng: np.random.Generator,
    out_size: int,
    context: float,
    config: AugmentConfig | None = None,
) -> np.ndarray:
    """A randomly jittered and degraded ``out_size`` BGR uint8 crop from a stored crop."""
    config = config or AugmentConfig()
    nominal = stored.shape[0] / context
    side = nominal * rng.uniform(*config.scale)
    offset = rng.uniform(-config.shift, config.shift, size=2) * nominal
    centre = (stored.shape[1] / 2.0 + float(offset[0]), stored.shape[0] / 2.0 + float(offset[1]))
    angle = rng.uniform(-config.rotation_degrees, config.rotation_degrees)
    crop = _warp(stored, centre, side, angle, out_size)
    if rng.random() < config.flip_probability:
        crop = cv2.flip(crop, 1)
    return _degrade(_photometric(crop, rng, config), rng, config)
