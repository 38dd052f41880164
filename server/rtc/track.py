"""The video sent back to the camera: every incoming frame, with the newest detections drawn on it.

aiortc decodes every incoming frame into an unbounded queue, so a slow `recv()` makes latency grow
without end. A background task therefore reads the source as fast as frames arrive, keeps only the newest
and hands it to the session's analysis slot; `recv()` hands that one out (at the camera's rate) with boxes
from the latest analysis, which may be of an earlier frame: the detection rate may fall under load, the
video rate and latency do not. The session opens and closes the analysis slot and hands each result to
`show()`; the drawing is `server.rtc.overlay`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.analysis.analyser import AnalysisResult
from server.analysis.worker import AnalysisSlot
from server.metrics import ServerMetrics
from server.rtc.overlay import Annotator

logger = logging.getLogger(__name__)

# Boxes of an analysis older than this are no longer drawn: the face has likely moved or left.
STALE_AFTER_S = 1.0


class AnnotatedVideoTrack(MediaStreamTrack):
    """Wraps a remote camera track; submits its frames to the analysis and draws the newest results."""

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        analysis: AnalysisSlot,
        metrics: ServerMetrics | None = None,
        with_text: bool = True,
    ) -> None:
        super().__init__()
        self._source = source
        self._analysis = analysis
        self._metrics = metrics
        self._latest_result: AnalysisResult | None = None
        self._newest: av.VideoFrame | None = None
        self._frame_ready = asyncio.Event()
        self._annotator = Annotator(with_text)
        self._source_ended = False
        self.frames_received = 0
        self.frames_sent = 0
        self.last_frame_at = time.monotonic()
        self._reader = asyncio.get_running_loop().create_task(
            self._read_source(), name=f"read-video-{analysis.session_id}"
        )

    def show(self, result: AnalysisResult) -> None:
        """Draw `result`'s boxes on the frames sent from now on (until a newer one, or it is stale)."""
        self._latest_result = result

    async def recv(self) -> av.VideoFrame:
        """The newest camera frame, with the newest analysis's boxes when they are recent."""
        frame = await self._next_frame()
        result = self._latest_result
        if result is not None and result.detections and time.monotonic() - result.received_at < STALE_AFTER_S:
            frame = self._annotator.annotate(frame, result)
        self.frames_sent += 1
        if self._metrics is not None:
            self._metrics.frames_sent.inc()
        return frame

    async def _next_frame(self) -> av.VideoFrame:
        """Wait for a frame newer than the last one sent; MediaStreamError once the track has ended."""
        while self._newest is None:
            if self.readyState != "live" or self._source_ended:
                self.stop()
                raise MediaStreamError
            self._frame_ready.clear()
            await self._frame_ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame, self._newest = self._newest, None
        return frame

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
                self._newest = frame
                self._frame_ready.set()
                self._analysis.submit(number, frame)
        except MediaStreamError:
            pass
        except Exception:
            logger.exception("reading the camera track failed", extra={"session": self._analysis.session_id})
        finally:
            self._source_ended = True
            self._frame_ready.set()

    def stop(self) -> None:
        """End the track: stop reading the source, wake a waiting recv() (the session closes the slot)."""
        if self.readyState == "live":
            super().stop()
        self._reader.cancel()
        self._newest = None
        self._frame_ready.set()

    async def wait_closed(self) -> None:
        """Wait until the source-reading task has really finished (after stop())."""
        await asyncio.wait([self._reader])
