"""Test-only reference: the overlay drawn into one yuv420p frame directly, without the stamp's reuse.

Kept out of `server/` because the server never calls it: `tests/test_overlay_stamp.py` and
`tests/test_server_overlay.py` use it as the oracle that `server.rtc.overlay.OverlayStamp` must equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import av

from server.rtc.overlay import can_draw_in_place, overlay_pixels, split_planes, stamp_yuv420p
from vision.pipeline import Detection


def draw_on_yuv420p(frame: av.VideoFrame, detections: Sequence[Detection]) -> av.VideoFrame:
    """A new yuv420p frame: `frame` with the detections (in its own pixels) drawn as draw_detections does."""
    if not can_draw_in_place(frame):
        raise ValueError(
            f"expected an even-sized yuv420p frame, got {frame.format.name} {frame.width}x{frame.height}"
        )
    indices, values = overlay_pixels(frame.width, frame.height, detections)
    return stamp_yuv420p(frame, split_planes(indices, values, frame.width, frame.height))
