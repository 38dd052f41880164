"""Face crops for the classifier: one geometry shared by training, evaluation and the server.

Masks sit low on the face, so the crop is a square around the detected box, enlarged by a margin
on every side, which keeps chin and nose inside even when the detector's box is tight.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]

DEFAULT_MARGIN = 0.15


def square_crop_box(box: Box, margin: float = DEFAULT_MARGIN) -> Box:
    """Square box centred on ``box`` whose side is the box's long side times (1 + 2 * margin)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def crop_square(image: np.ndarray, region: Box, size: int) -> np.ndarray:
    """Resample ``region`` of a BGR image into a ``size`` x ``size`` crop in one warp.

    Parts of the region outside the image are filled by replicating the border, so faces at the
    frame edge still give a full crop.
    """
    x0, y0, x1, y1 = region
    scale_x = size / max(x1 - x0, 1e-6)
    scale_y = size / max(y1 - y0, 1e-6)
    matrix = np.array([[scale_x, 0.0, -x0 * scale_x], [0.0, scale_y, -y0 * scale_y]], dtype=np.float64)
    shrinking = scale_x < 1.0 or scale_y < 1.0
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def crop_face(image: np.ndarray, box: Box, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The classifier's input crop for one face box (frame pixels) of a BGR image."""
    return crop_square(image, square_crop_box(box, margin), size)


def crops_to_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Stack BGR uint8 crops into the networks' input: float32 NCHW RGB in [0, 1].

    Mean/std normalisation happens inside the network, so every backend gets the same tensor.
    """
    stacked = np.stack(crops)[..., ::-1]
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1.0 / 255.0)
