"""The video sent back to the camera: every incoming frame, with the newest detections drawn on it.

aiortc decodes every incoming frame into an unbounded queue, so a slow `recv()` makes latency grow
without end. A background task therefore reads the source as fast as frames arrive and keeps only the
newest; `recv()` hands that one out (at the camera's rate) with boxes from the latest analysis, which may
be of an earlier frame: the detection rate may fall under load, the video rate and latency do not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from server.metrics import ServerMetrics
from server.overlay import PlanePixels, can_draw_in_place, overlay_pixels, split_planes, stamp_yuv420p
from server.worker import AnalysisResult, AnalysisWorker, FrameAnalyser
from vision.draw import draw_detections
from vision.pipeline import Detection

logger = logging.getLogger(__name__)

# Boxes of an analysis older than this are no longer drawn: the face has likely moved or left.
STALE_AFTER_S = 1.0


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
) -> av.VideoFrame:
    """A copy of `frame` with the detections (found in a frame of `size`) drawn on it, through BGR; pts kept.

    For frames that `server.overlay` cannot draw into directly (odd sizes, formats other than yuv420p).

    `reformatter` belongs to the calling thread: the analysis worker converts the same frame at the same
    time, and two threads must never share one swscale context.
    """
    image = reformatter.reformat(frame, format="bgr24").to_ndarray()
    draw_detections(image, scale_detections(detections, size, (frame.width, frame.height)))
    annotated = av.VideoFrame.from_ndarray(image, format="bgr24")
    annotated.pts = frame.pts
    if frame.time_base is not None:
        annotated.time_base = frame.time_base
    return annotated


@dataclasses.dataclass(frozen=True)
class OverlayStamp:
    """The pixels that drawing one analysis's detections sets in a yuv420p frame of one size.

    `draw_on_yuv420p` replaces pixels outright, never blending them with the frame, so its drawing is the
    same on every frame until the next analysis, and with several cameras an analysis is shown on many
    frames. The drawing is worked out once per analysis (`overlay_pixels`, on the rectangle around the
    boxes: about 1 ms) and stamped onto each frame (0.1 ms) instead of drawn on each.
    """

    result: AnalysisResult
    size: tuple[int, int]
    pixels: list[PlanePixels]

    @classmethod
    def make(cls, result: AnalysisResult, size: tuple[int, int]) -> OverlayStamp:
        detections = scale_detections(result.detections, (result.width, result.height), size)
        indices, values = overlay_pixels(size[0], size[1], detections)
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

    The server hands frame-sized blocks back to the system when they are freed (server/memory.py), so a new
    640x480 frame is paid in page faults on every frame: stamping into a new frame took 0.34-0.46 ms, into
    one of these 0.09-0.12 ms (`python -m bench.media_steps`). aiortc's sender encodes each frame before it
    asks the track for the next one, so a frame handed out is free again by the time it is written two
    frames later.
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


class AnnotatedVideoTrack(MediaStreamTrack):
    """Wraps a remote camera track; submits its frames to the shared worker and draws the results."""

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        worker: AnalysisWorker,
        key: str,
        metrics: ServerMetrics | None = None,
        on_result: Callable[[AnalysisResult], None] | None = None,
        analyser: FrameAnalyser | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._worker = worker
        self._key = key
        self._metrics = metrics
        self._on_result = on_result
        self._latest_result: AnalysisResult | None = None
        self._newest: tuple[int, av.VideoFrame] | None = None
        self._frame_ready = asyncio.Event()
        self._reformatter = VideoReformatter()
        self._stamp: OverlayStamp | None = None
        self._output = OutputFrames()
        self._source_ended = False
        self.frames_received = 0
        self.frames_sent = 0
        self.last_frame_at = time.monotonic()
        worker.open(key, asyncio.get_running_loop(), self._take_result, analyser)
        self._reader = asyncio.get_running_loop().create_task(self._read_source(), name=f"read-video-{key}")

    @property
    def latest_result(self) -> AnalysisResult | None:
        return self._latest_result

    async def _read_source(self) -> None:
        try:
            while True:
                frame = await self._source.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                number = self.frames_received
                self.frames_received += 1
                self.last_frame_at = time.monotonic()
                if self._metrics is not None:
                    self._metrics.frames_received.inc()
                    if self._newest is not None:
                        self._metrics.frames_dropped.labels(stage="output").inc()
                self._newest = (number, frame)
                self._frame_ready.set()
                self._worker.submit(self._key, number, frame)
        except MediaStreamError:
            pass
        except Exception:
            logger.exception("reading the camera track failed", extra={"session": self._key})
        finally:
            self._source_ended = True
            self._frame_ready.set()

    def _take_result(self, result: AnalysisResult) -> None:
        self._latest_result = result
        if self._on_result is not None:
            self._on_result(result)

    async def recv(self) -> av.VideoFrame:
        while self._newest is None:
            if self.readyState != "live" or self._source_ended:
                self.stop()
                raise MediaStreamError
            self._frame_ready.clear()
            await self._frame_ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        _, frame = self._newest
        self._newest = None
        result = self._latest_result
        if result is not None and result.detections and time.monotonic() - result.received_at < STALE_AFTER_S:
            frame = self._annotate(frame, result)
        self.frames_sent += 1
        if self._metrics is not None:
            self._metrics.frames_sent.inc()
        return frame

    def _annotate(self, frame: av.VideoFrame, result: AnalysisResult) -> av.VideoFrame:
        """Draw in the decoded yuv420p planes where possible (no colour conversion), else via BGR."""
        if can_draw_in_place(frame):
            size = (frame.width, frame.height)
            stamp = self._stamp
            if stamp is None or stamp.result is not result or stamp.size != size:
                stamp = self._stamp = OverlayStamp.make(result, size)
            return stamp.apply(frame, self._output.take(*size))
        return annotate_frame(frame, result.detections, (result.width, result.height), self._reformatter)

    def stop(self) -> None:
        """End the track: stop reading the source, leave the worker, wake a waiting recv()."""
        if self.readyState == "live":
            super().stop()
        self._reader.cancel()
        self._worker.close(self._key)
        self._newest = None
        self._frame_ready.set()

    async def wait_closed(self) -> None:
        """Wait until the source-reading task has really finished (after stop())."""
        await asyncio.wait([self._reader])
