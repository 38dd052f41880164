"""Box arithmetic shared by the vision core, the evaluation and the passages: one definition of IoU."""

from __future__ import annotations

from collections.abc import Sequence


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when either is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def clipped_box(
    x0: float, y0: float, x1: float, y1: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Corners rounded to pixels and clipped to a `width` x `height` frame."""
    return (
        round(min(max(x0, 0.0), width)),
        round(min(max(y0, 0.0), height)),
        round(min(max(x1, 0.0), width)),
        round(min(max(y1, 0.0), height)),
    )
