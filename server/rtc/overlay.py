"""The boxes drawn on the video sent back: straight into the decoded yuv420p frames, without converting each
frame to BGR and back.

Converting every outgoing frame to BGR to draw on it, and the encoder converting it back to yuv420p, cost
several times more per frame per camera than the stamp below (bench/RESULTS.md). Here
`vision.draw.draw_detections` draws onto a black BGR canvas; every pixel it touched is non-black (solid
outlines, filled label boxes, white text blended into them), so the canvas is converted to I420 (OpenCV:
BT.601 limited range, like the encoder's conversion) and only those pixels are copied into the frame's Y,
U and V planes. `OverlayStamp` keeps those pixels for all the frames that show one analysis,
`OutputFrames` the two frames they are written into, and `Annotator` chooses between the stamp and
drawing through BGR (odd sizes, other formats).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import av
import cv2
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from server.analysis.analyser import AnalysisResult
from vision.draw import draw_detections
from vision.pipeline import Detection

_NEIGHBOURS = np.ones((3, 3), dtype=np.uint8)


def can_draw_in_place(frame: av.VideoFrame) -> bool:
    """yuv420p with even sides: the layout this module writes into."""
    return frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0


PlanePixels = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Pixels to set in one plane: row indices, column indices, values."""


def split_planes(indices: np.ndarray, values: np.ndarray, width: int, height: int) -> list[PlanePixels]:
    """Flat I420 `indices` (as `overlay_pixels` gives them) as rows and columns of the Y, U and V planes."""
    u_start = width * height
    v_start = u_start + (width // 2) * (height // 2)
    planes = []
    for start, end, plane_width in (
        (0, u_start, width),
        (u_start, v_start, width // 2),
        (v_start, v_start + (width // 2) * (height // 2), width // 2),
    ):
        inside = (indices >= start) & (indices < end)
        rows, columns = np.divmod(indices[inside] - start, plane_width)
        planes.append((rows, columns, values[inside]))
    return planes


def stamp_yuv420p(
    frame: av.VideoFrame, pixels: Sequence[PlanePixels], into: av.VideoFrame | None = None
) -> av.VideoFrame:
    """The yuv420p `frame` copied into `into` (a new frame when None) with `pixels` set; timestamps kept.

    Plane by plane, straight between the frames' buffers: no intermediate array.
    """
    stamped = into if into is not None else av.VideoFrame(frame.width, frame.height, "yuv420p")
    for source, target, (rows, columns, values) in zip(frame.planes, stamped.planes, pixels, strict=True):
        width, height = source.width, source.height
        pixels_in = np.frombuffer(memoryview(source), np.uint8).reshape(height, source.line_size)[:, :width]
        pixels_out = np.frombuffer(memoryview(target), np.uint8).reshape(height, target.line_size)[:, :width]
        pixels_out[...] = pixels_in
        pixels_out[rows, columns] = values
    stamped.pts = frame.pts
    if frame.time_base is not None:
        stamped.time_base = frame.time_base
    return stamped


def overlay_pixels(
    width: int, height: int, detections: Sequence[Detection], with_text: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels that drawing `detections` sets in an even-sized yuv420p frame: flat I420 indices, values.

    The dilation and colour conversions run only on the rectangle around what was drawn (aligned to the
    2x2 chroma blocks), not on the whole frame (bench/RESULTS.md, "the rectangle around the drawing").
    """
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    draw_detections(canvas, detections, with_text)
    # The rectangle around the non-black bytes of the rows seen as width * 3 bytes (no grey copy of the
    # whole canvas), then in pixels.
    x, y, w, h = cv2.boundingRect(canvas.reshape(height, width * 3))
    if w == 0 or h == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.uint8)
    x, w = x // 3, (x + w + 2) // 3 - x // 3
    # Two pixels of margin for the dilation, then out to even coordinates (whole chroma blocks).
    x0, y0 = max(0, x - 2) & ~1, max(0, y - 2) & ~1
    x1, y1 = min(width, (x + w + 3) & ~1), min(height, (y + h + 3) & ~1)
    roi = canvas[y0:y1, x0:x1]
    rows, cols = y1 - y0, x1 - x0
    touched = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY) > 0
    # A chroma sample covers a 2x2 block: where a line covers only part of a block, the block's other
    # pixels take the colour of their drawn neighbours, so that its chroma is the line's, not a blend
    # with the black canvas.
    filled = cv2.dilate(roi, _NEIGHBOURS)
    cv2.copyTo(roi, touched.view(np.uint8), filled)
    block_touched = (cv2.cvtColor(filled, cv2.COLOR_BGR2GRAY) > 0)[::2, ::2]
    i420 = cv2.cvtColor(np.ascontiguousarray(filled), cv2.COLOR_BGR2YUV_I420).ravel()
    luma = i420[: rows * cols].reshape(rows, cols)
    chroma_size = (rows // 2) * (cols // 2)
    u_plane = i420[rows * cols : rows * cols + chroma_size].reshape(rows // 2, cols // 2)
    v_plane = i420[rows * cols + chroma_size :].reshape(rows // 2, cols // 2)

    luma_rows, luma_cols = np.nonzero(touched)
    chroma_rows, chroma_cols = np.nonzero(block_touched)
    chroma_index = (y0 // 2 + chroma_rows) * (width // 2) + (x0 // 2 + chroma_cols)
    u_start = width * height
    v_start = u_start + (width // 2) * (height // 2)
    indices = np.concatenate(
        [(y0 + luma_rows) * width + (x0 + luma_cols), u_start + chroma_index, v_start + chroma_index]
    )
    values = np.concatenate(
        [
            luma[luma_rows, luma_cols],
            u_plane[chroma_rows, chroma_cols],
            v_plane[chroma_rows, chroma_cols],
        ]
    )
    return indices, values


def scale_detections(
    detections: Sequence[Detection], source: tuple[int, int], target: tuple[int, int]
) -> list[Detection]:
    """Boxes from a frame of size `source` (w, h) moved into a frame of size `target`."""
    if source == target:
        return list(detections)
    sx = target[0] / source[0]
    sy = target[1] / source[1]
    scaled = []
    for detection in detections:
        x0, y0, x1, y1 = detection.box
        box = (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        scaled.append(dataclasses.replace(detection, box=box))
    return scaled


def annotate_frame(
    frame: av.VideoFrame,
    detections: Sequence[Detection],
    size: tuple[int, int],
    reformatter: VideoReformatter,
    with_text: bool = True,
) -> av.VideoFrame:
    """A copy of `frame` with the detections (found in a frame of `size`) drawn on it, through BGR; pts kept.

    For frames that `server.rtc.overlay` cannot draw into directly (odd sizes, formats other than yuv420p).

    `reformatter` belongs to the calling thread: the analysis worker converts the same frame at the same
    time, and two threads must never share one swscale context.
    """
    image = reformatter.reformat(frame, format="bgr24").to_ndarray()
    draw_detections(image, scale_detections(detections, size, (frame.width, frame.height)), with_text)
    annotated = av.VideoFrame.from_ndarray(image, format="bgr24")
    annotated.pts = frame.pts
    if frame.time_base is not None:
        annotated.time_base = frame.time_base
    return annotated


@dataclasses.dataclass(frozen=True)
class OverlayStamp:
    """The pixels that drawing one analysis's detections sets in a yuv420p frame of one size.

    The stamp replaces pixels outright, never blending them with the frame, so its drawing is the
    same on every frame until the next analysis, and with several cameras an analysis is shown on many
    frames. The drawing is worked out once per analysis (`overlay_pixels`, on the rectangle around the
    boxes) and stamped onto each frame, a fraction of that cost (bench/RESULTS.md), instead of drawn on
    each.
    """

    result: AnalysisResult
    size: tuple[int, int]
    pixels: list[PlanePixels]

    @classmethod
    def make(cls, result: AnalysisResult, size: tuple[int, int], with_text: bool = True) -> OverlayStamp:
        detections = scale_detections(result.detections, (result.width, result.height), size)
        indices, values = overlay_pixels(size[0], size[1], detections, with_text)
        return cls(result=result, size=size, pixels=split_planes(indices, values, size[0], size[1]))

    @property
    def count(self) -> int:
        """Pixel values the stamp sets, all planes together."""
        return sum(values.size for _, _, values in self.pixels)

    def apply(self, frame: av.VideoFrame, into: av.VideoFrame | None = None) -> av.VideoFrame:
        """The yuv420p `frame` (of this stamp's size) with the drawing on it, written into `into` (a new
        frame when None); pts kept."""
        return stamp_yuv420p(frame, self.pixels, into)


class OutputFrames:
    """Two yuv420p frames that the annotated video is written into in turn, instead of a new one per frame.

    The server hands frame-sized blocks back to the system when they are freed
    (server/memory.py), so a new
    640x480 frame is paid in page faults on every frame: stamping into a new frame took several times as
    long as into one of these (`python -m bench.media_steps`, bench/RESULTS.md). aiortc's sender encodes
    each frame before it asks the track for the next one, so a frame handed out is free again by the time
    it is written two frames later.
    """

    def __init__(self) -> None:
        self._frames: list[av.VideoFrame] = []
        self._turn = 0

    def take(self, width: int, height: int) -> av.VideoFrame:
        """The frame to write next (two new ones when the size changed), with no picture type set: an
        encoder that forced a keyframe marked it, and the mark must not force one on every later use."""
        if not self._frames or (self._frames[0].width, self._frames[0].height) != (width, height):
            self._frames = [av.VideoFrame(width, height, "yuv420p") for _ in range(2)]
        frame = self._frames[self._turn]
        self._turn ^= 1
        frame.pict_type = PictureType.NONE
        return frame


class Annotator:
    """One video track's drawing: the stamp of the newest analysis, the output frames it is written into,
    and the reformatter for frames that must be drawn through BGR. `with_text`: the labels' names, or
    only their symbols (a viewer whose language OpenCV cannot draw)."""

    def __init__(self, with_text: bool = True) -> None:
        self._with_text = with_text
        self._stamp: OverlayStamp | None = None
        self._output = OutputFrames()
        self._reformatter = VideoReformatter()

    def annotate(self, frame: av.VideoFrame, result: AnalysisResult) -> av.VideoFrame:
        """`frame` with `result`'s boxes: in the decoded yuv420p planes where possible (no colour
        conversion), else through BGR."""
        if can_draw_in_place(frame):
            size = (frame.width, frame.height)
            stamp = self._stamp
            if stamp is None or stamp.result is not result or stamp.size != size:
                stamp = self._stamp = OverlayStamp.make(result, size, self._with_text)
            return stamp.apply(frame, self._output.take(*size))
        size = (result.width, result.height)
        return annotate_frame(frame, result.detections, size, self._reformatter, self._with_text)
