"""One analysis thread for the whole server, fed by a one-slot "newest frame" mailbox per session.

Frames are analysed one after the other: running two analyses at once lowered throughput on the 2-core
target. The server's analyser is `server.analysis_process.AnalysisProcess`, so this thread only converts
the frame and waits while the models run in their own process; an analyser given directly (tests, the
in-process pipeline) runs in this thread at low priority. A session that submits a frame while its
previous one still waits replaces it (counted as dropped), so no queue can grow; sessions are served
round-robin, and results go back to each session's event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from server.metrics import ServerMetrics
from vision.pipeline import Detection

logger = logging.getLogger(__name__)

# Niceness of the analysis when this thread runs the models itself (Linux; the analysis process runs under
# SCHED_IDLE instead, and falls back to this where that is refused): decoding, drawing and encoding the
# video of every camera come first, analysis takes the CPU that is left. Under load the detection rate
# falls, the video rate and latency hold (bench/RESULTS.md: 4 cameras on 2 busy cores, 9 -> 25 fps received).
ANALYSIS_NICENESS = 10


def lower_analysis_priority() -> None:
    """Give the calling thread, and OpenCV's work in it, a lower CPU priority than the video threads.

    OpenCV runs single-threaded here: its own pool threads would not inherit this thread's niceness,
    and with every core busy with video a second detector thread only adds contention.
    """
    cv2.setNumThreads(1)
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ANALYSIS_NICENESS)
        except OSError as exc:
            logger.warning("cannot lower the analysis thread's priority: %s", exc)


class FrameAnalyser(Protocol):
    """What the worker runs: MaskDetectionPipeline, or a stand-in in tests."""

    def analyse(self, image: np.ndarray) -> Sequence[Detection]: ...


@dataclass(frozen=True)
class AnalysisResult:
    """The detections of one frame, with the timings and totals the page shows."""

    number: int
    width: int
    height: int
    detections: tuple[Detection, ...]
    image: np.ndarray = field(repr=False)
    received_at: float
    """Monotonic time (time.monotonic) when the frame reached the server."""
    queue_ms: float
    inference_ms: float
    analysed: int
    dropped: int


@dataclass
class _Pending:
    number: int
    frame: av.VideoFrame | np.ndarray
    received_at: float


@dataclass
class _Slot:
    loop: asyncio.AbstractEventLoop
    on_result: Callable[[AnalysisResult], None]
    analyser: FrameAnalyser
    pending: _Pending | None = None
    analysed: int = 0
    dropped: int = 0
    failed: int = 0


def to_bgr_array(frame: av.VideoFrame | np.ndarray, reformatter: VideoReformatter) -> np.ndarray:
    """The frame as a BGR array, converted with the caller's own reformatter.

    The same VideoFrame is also converted on the event loop (to draw on it); `frame.to_ndarray(format=...)`
    would share the frame's one swscale context between two threads, which crashes.
    """
    if isinstance(frame, np.ndarray):
        return frame
    return reformatter.reformat(frame, format="bgr24").to_ndarray()


class AnalysisWorker:
    """Runs `analyser.analyse` on the newest pending frame of each session in turn.

    With `lower_priority` the thread (and OpenCV in it) runs at `ANALYSIS_NICENESS`; leave it off when the
    analyser only hands frames to a process that has lowered its own priority.
    """

    def __init__(
        self, analyser: FrameAnalyser, metrics: ServerMetrics | None = None, lower_priority: bool = True
    ) -> None:
        self._analyser = analyser
        self._lower_priority = lower_priority
        self._metrics = metrics
        self._slots: dict[str, _Slot] = {}
        self._order: list[str] = []
        self._cursor = 0
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._reformatter = VideoReformatter()

    @property
    def sessions(self) -> list[str]:
        with self._wakeup:
            return list(self._order)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the analysis worker was already started")
        self._thread = threading.Thread(target=self._run, name="analysis-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the analysis in progress, drop pending frames and join the thread."""
        with self._wakeup:
            self._stopping = True
            self._slots.clear()
            self._order.clear()
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def open(
        self,
        key: str,
        loop: asyncio.AbstractEventLoop,
        on_result: Callable[[AnalysisResult], None],
        analyser: FrameAnalyser | None = None,
    ) -> None:
        """Give session `key` a mailbox; `on_result` is called on `loop` for each analysed frame.

        `analyser` is the session's own (stateful, e.g. following faces); by default the shared one.
        It only ever runs in the worker thread, one frame at a time.
        """
        with self._wakeup:
            if key in self._slots:
                raise ValueError(f"session {key} already has a mailbox")
            self._slots[key] = _Slot(loop=loop, on_result=on_result, analyser=analyser or self._analyser)
            self._order.append(key)

    def close(self, key: str) -> None:
        """Forget session `key`: its pending frame is dropped and no result reaches it any more."""
        with self._wakeup:
            if self._slots.pop(key, None) is None:
                return
            index = self._order.index(key)
            self._order.pop(index)
            if index < self._cursor:
                self._cursor -= 1

    def submit(self, key: str, number: int, frame: av.VideoFrame | np.ndarray) -> bool:
        """Put the frame in the session's mailbox; True when it replaced one that was never analysed."""
        with self._wakeup:
            slot = self._slots.get(key)
            if slot is None:
                return False
            replaced = slot.pending is not None
            if replaced:
                slot.dropped += 1
                if self._metrics is not None:
                    self._metrics.frames_dropped.labels(stage="analysis").inc()
            slot.pending = _Pending(number=number, frame=frame, received_at=time.monotonic())
            self._wakeup.notify()
            return replaced

    def _take_next(self) -> tuple[str, _Slot, _Pending] | None:
        """Round-robin from the session after the last one served; None when nothing waits."""
        count = len(self._order)
        for offset in range(count):
            index = (self._cursor + offset) % count
            key = self._order[index]
            slot = self._slots[key]
            if slot.pending is not None:
                pending, slot.pending = slot.pending, None
                self._cursor = (index + 1) % count
                return key, slot, pending
        return None

    def _run(self) -> None:
        if self._lower_priority:
            lower_analysis_priority()
        while True:
            with self._wakeup:
                job = None
                while not self._stopping and (job := self._take_next()) is None:
                    self._wakeup.wait()
                if self._stopping or job is None:
                    return
            self._analyse(*job)

    def _analyse(self, key: str, slot: _Slot, pending: _Pending) -> None:
        started = time.monotonic()
        try:
            image = to_bgr_array(pending.frame, self._reformatter)
            detections = tuple(slot.analyser.analyse(image))
        except Exception:
            slot.failed += 1
            if slot.failed == 1:
                logger.exception("analysis of a frame failed", extra={"session": key})
            return
        finished = time.monotonic()
        slot.analysed += 1
        if self._metrics is not None:
            self._metrics.frames_analysed.inc()
            self._metrics.analysis_seconds.observe(finished - started)
            for detection in detections:
                self._metrics.faces.labels(label=detection.label).inc()
        result = AnalysisResult(
            number=pending.number,
            width=image.shape[1],
            height=image.shape[0],
            detections=detections,
            image=image,
            received_at=pending.received_at,
            queue_ms=(started - pending.received_at) * 1000.0,
            inference_ms=(finished - started) * 1000.0,
            analysed=slot.analysed,
            dropped=slot.dropped,
        )
        try:
            slot.loop.call_soon_threadsafe(self._deliver, key, slot, result)
        except RuntimeError:
            # The session's event loop is closed: nobody is left to take the result.
            self.close(key)

    def _deliver(self, key: str, slot: _Slot, result: AnalysisResult) -> None:
        """On the session's loop: hand over the result unless the session closed meanwhile."""
        with self._wakeup:
            if self._slots.get(key) is not slot:
                return
        try:
            slot.on_result(result)
        except Exception:
            logger.exception("a session's result handler failed", extra={"session": key})
