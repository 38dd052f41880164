"""Benchmark video made from real scene photos: letterboxed 640x480 frames that move, plus a frame code.

Every client and every pipeline variant builds the same frames from the same photos, so the
numbers compare like with like. The frame code is the frame's index drawn as black and white
blocks in the bottom-left corner (away from the chosen faces), readable after VP8 compression,
so a returned frame can be matched to the moment it was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.voc import SceneAnnotation, load_scene_annotations

WIDTH, HEIGHT = 640, 480
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCENES_DIR = DATA_DIR / "scenes"

CODE_BLOCK = 16
CODE_COLUMNS = 8
CODE_ROWS = 3
CODE_BITS = 16
# The code area; faces of the stream scenes must stay clear of it (plus the motion amplitude).
CODE_AREA = (0, HEIGHT - CODE_ROWS * CODE_BLOCK, CODE_COLUMNS * CODE_BLOCK, HEIGHT)
MOTION_X, MOTION_Y = 24.0, 12.0
_DARK, _LIGHT = 16, 235


@dataclass(frozen=True)
class Scene:
    """A letterboxed photo and its annotated faces in 640x480 frame pixels."""

    image: np.ndarray
    faces: tuple[tuple[str, tuple[float, float, float, float]], ...]
    name: str


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The image scaled to fit 640x480 on black; returns (frame, scale, x offset, y offset)."""
    height, width = image.shape[:2]
    scale = min(WIDTH / width, HEIGHT / height)
    new_w, new_h = round(width * scale), round(height * scale)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    x_off, y_off = (WIDTH - new_w) // 2, (HEIGHT - new_h) // 2
    frame[y_off : y_off + new_h, x_off : x_off + new_w] = resized
    return frame, scale, float(x_off), float(y_off)


def load_scene(image_path: Path, annotation: SceneAnnotation) -> Scene:
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {image_path}")
    frame, scale, x_off, y_off = letterbox(image)
    faces = tuple(
        (
            face.label,
            (
                face.box[0] * scale + x_off,
                face.box[1] * scale + y_off,
                face.box[2] * scale + x_off,
                face.box[3] * scale + y_off,
            ),
        )
        for face in annotation.faces
    )
    return Scene(image=frame, faces=faces, name=image_path.name)


def test_split_scenes(dataset: str, limit: int | None = None) -> list[Scene]:
    """Photos of one scene dataset's test split, in name order."""
    pairs = load_scene_annotations(SCENES_DIR / dataset, "test")
    if limit is not None:
        pairs = pairs[:limit]
    return [load_scene(path, annotation) for path, annotation in pairs]


def stream_scenes(count: int) -> list[Scene]:
    """Test photos that look like a camera at an entrance: 1-3 faces, each at least 48 px, clear of the code.

    Chosen from the jolignier test split (larger faces than andrewmvd), in name order.
    """
    chosen = []
    margin_x, margin_y = MOTION_X + 40, MOTION_Y + 40
    for path, annotation in load_scene_annotations(SCENES_DIR / "jolignier", "test"):
        if not 1 <= len(annotation.faces) <= 3:
            continue
        scene = load_scene(path, annotation)
        sides = [min(b[2] - b[0], b[3] - b[1]) for _, b in scene.faces]
        clear = all(b[0] > CODE_AREA[2] + margin_x or b[3] < CODE_AREA[1] - margin_y for _, b in scene.faces)
        if min(sides) >= 48 and clear:
            chosen.append(scene)
        if len(chosen) == count:
            break
    return chosen


MOTION_PERIOD_S = 2.5
"""The motion repeats every 2.5 s (horizontal period 2.5 s, vertical 1.25 s): a divisor of the clients'
25-s scene cycle, so that a stream repeats exactly (see bench/client.py)."""


def motion(t: float) -> tuple[float, float]:
    """Smooth camera/person motion: a shift in pixels at time t seconds."""
    phase = 2 * math.pi * t / MOTION_PERIOD_S
    return MOTION_X * math.sin(phase), MOTION_Y * math.sin(2 * phase)


def moved(scene: Scene, t: float) -> tuple[np.ndarray, list[tuple[str, tuple[float, float, float, float]]]]:
    """The scene shifted by ``motion(t)``, and its faces shifted with it."""
    dx, dy = motion(t)
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
    frame = cv2.warpAffine(scene.image, matrix, (WIDTH, HEIGHT), borderMode=cv2.BORDER_CONSTANT)
    faces = [(label, (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)) for label, b in scene.faces]
    return frame, faces


def to_i420(image: np.ndarray) -> np.ndarray:
    """A BGR frame as planar YUV 4:2:0 (shape (H * 3 / 2, W)), the layout the VP8 encoder takes."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)


def moved_i420(i420: np.ndarray, t: float) -> np.ndarray:
    """An I420 scene shifted by ``motion(t)`` rounded to even pixels: two plane copies, no resampling.

    Cheap enough that several camera processes on a small machine leave the CPU to the server.
    """
    dx, dy = (2 * round(value / 2) for value in motion(t))
    frame = np.empty_like(i420)
    frame[:HEIGHT] = 16
    frame[HEIGHT:] = 128
    _shift_into(frame[:HEIGHT], i420[:HEIGHT], dx, dy)
    source_chroma = i420[HEIGHT:].reshape(2, HEIGHT // 2, WIDTH // 2)
    target_chroma = frame[HEIGHT:].reshape(2, HEIGHT // 2, WIDTH // 2)
    for plane in range(2):
        _shift_into(target_chroma[plane], source_chroma[plane], dx // 2, dy // 2)
    return frame


def _shift_into(target: np.ndarray, source: np.ndarray, dx: int, dy: int) -> None:
    height, width = source.shape
    target[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = source[
        max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]


def _code_bits(index: int) -> list[int]:
    value = index % (1 << CODE_BITS)
    check = ((value & 0xFF) ^ (value >> 8) ^ 0xA5) & 0xFF
    word = value | (check << CODE_BITS)
    return [(word >> bit) & 1 for bit in range(CODE_COLUMNS * CODE_ROWS)]


def stamp_code(frame: np.ndarray, index: int) -> None:
    """Draw the frame index (16 bits + 8 check bits) into the bottom-left corner of a BGR frame."""
    x0, y0 = CODE_AREA[0], CODE_AREA[1]
    for position, bit in enumerate(_code_bits(index)):
        row, column = divmod(position, CODE_COLUMNS)
        top, left = y0 + row * CODE_BLOCK, x0 + column * CODE_BLOCK
        frame[top : top + CODE_BLOCK, left : left + CODE_BLOCK] = _LIGHT if bit else _DARK


def stamp_code_i420(frame: np.ndarray, index: int) -> None:
    """The frame code of ``stamp_code`` in an I420 frame: black/white luma blocks, neutral chroma."""
    stamp_code(frame[:HEIGHT, :, np.newaxis], index)
    x0, y0, x1, y1 = CODE_AREA
    chroma = frame[HEIGHT:].reshape(2, HEIGHT // 2, WIDTH // 2)
    chroma[:, y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128


def read_code(luma: np.ndarray) -> int | None:
    """The frame index from a frame's luma plane, or None when the code is unreadable."""
    if luma.shape[0] < HEIGHT or luma.shape[1] < WIDTH:
        return None
    x0, y0 = CODE_AREA[0], CODE_AREA[1]
    quarter = CODE_BLOCK // 4
    word = 0
    for position in range(CODE_COLUMNS * CODE_ROWS):
        row, column = divmod(position, CODE_COLUMNS)
        top, left = y0 + row * CODE_BLOCK + quarter, x0 + column * CODE_BLOCK + quarter
        centre = luma[top : top + 2 * quarter, left : left + 2 * quarter]
        if float(centre.mean()) > (_DARK + _LIGHT) / 2:
            word |= 1 << position
    value = word & ((1 << CODE_BITS) - 1)
    read_bits = [(word >> bit) & 1 for bit in range(CODE_COLUMNS * CODE_ROWS)]
    return value if _code_bits(value) == read_bits else None
