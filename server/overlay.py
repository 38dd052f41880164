"""Draw the annotation straight into a decoded yuv420p frame, without converting the frame to BGR and back.

Converting every outgoing frame to BGR to draw on it, and the encoder converting it back to yuv420p, cost
several milliseconds per frame per camera. Here `vision.draw.draw_detections` draws onto a black BGR
canvas; every pixel it touched is non-black (solid outlines, filled label boxes, white text blended into
them), so the canvas is converted to I420 (OpenCV: BT.601 limited range, like the encoder's conversion)
and only those pixels are copied into the frame's Y, U and V planes: a fraction of a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import cv2
import numpy as np

from vision.draw import draw_detections
from vision.pipeline import Detection

_NEIGHBOURS = np.ones((3, 3), dtype=np.uint8)


def can_draw_in_place(frame: av.VideoFrame) -> bool:
    """yuv420p with even sides: the layout this module writes into."""
    return frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0


def draw_on_yuv420p(frame: av.VideoFrame, detections: Sequence[Detection]) -> av.VideoFrame:
    """A new yuv420p frame: `frame` with the detections (in its own pixels) drawn as draw_detections does."""
    if not can_draw_in_place(frame):
        raise ValueError(
            f"expected an even-sized yuv420p frame, got {frame.format.name} {frame.width}x{frame.height}"
        )
    width, height = frame.width, frame.height
    data = frame.to_ndarray()
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    draw_detections(canvas, detections)
    touched = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY) > 0
    # A chroma sample covers a 2x2 block: where a line covers only part of a block, the block's other
    # pixels take the colour of their drawn neighbours, so that its chroma is the line's, not a blend
    # with the black canvas.
    filled = cv2.dilate(canvas, _NEIGHBOURS)
    cv2.copyTo(canvas, touched.view(np.uint8), filled)
    block_touched = (cv2.cvtColor(filled, cv2.COLOR_BGR2GRAY) > 0)[::2, ::2].ravel()
    # I420 layout: the Y rows, then the U plane, then the V plane, each packed row after row.
    mask = np.concatenate([touched.ravel(), block_touched, block_touched]).reshape(data.shape)
    np.copyto(data, cv2.cvtColor(filled, cv2.COLOR_BGR2YUV_I420), where=mask)

    annotated = av.VideoFrame.from_ndarray(data, format="yuv420p")
    annotated.pts = frame.pts
    if frame.time_base is not None:
        annotated.time_base = frame.time_base
    return annotated
