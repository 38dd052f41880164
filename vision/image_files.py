"""Reading image files with one clear error for every way a file can be unusable."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}
)


class ImageFileError(RuntimeError):
    """An image file is missing, empty, truncated, corrupt or in a format OpenCV cannot decode."""


def read_image(path: str | Path) -> np.ndarray:
    """The file's pixels as 8-bit BGR, or ImageFileError naming the file and the reason.

    Decoding from bytes (not ``cv2.imread``) keeps non-ASCII paths working and separates "cannot
    open" from "cannot decode"; OpenCV 4.14 refuses truncated JPEG and PNG data instead of padding it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageFileError(f"{path}: cannot open file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageFileError(f"{path}: file is empty")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFileError(f"{path}: not a decodable image (corrupt, truncated or unsupported format)")
    return image
