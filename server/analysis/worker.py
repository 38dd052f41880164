"""One analysis thread for the whole server, fed by a one-slot "newest frame" mailbox per session.

Frames are analysed one after the other: running two analyses at once lowered throughput on the 2-core
target. The server's analyser source is `server.analysis.process.AnalysisProcess`, so this thread only
converts the frame to BGR (the one colour conversion on a frame's way to the models) and waits while the
models run in their own process; a source given directly (tests, the models in this process) runs in this
thread at low priority. A session that submits a frame while its previous one still waits replaces it
(counted as dropped), so no queue can grow; sessions are served round-robin, and results go back to each
session's event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from server.analysis.analyser import AnalyserSource, AnalysisResult, FrameAnalyser
from server.analysis.priority import lower_analysis_priority
from server.metrics import ServerMetrics

logger = logging.getLogger(__name__)

ResultHandler = Callable[[AnalysisResult], None]


@dataclass(frozen=True)
class AnalysisSlot:
    """A session's place in the worker, as its video track uses it: hand over the newest frame.

    `AnalysisWorker.open` gives it out; the session that opened it closes it (`AnalysisWorker.close`).
    """

    worker: AnalysisWorker
    session_id: str

    def submit(self, number: int, frame: av.VideoFrame | np.ndarray) -> bool:
        """Put the frame in the mailbox; True when it replaced one that was never analysed."""
        return self.worker.submit(self.session_id, number, frame)


@dataclass
class _Pending:
    number: int
    frame: av.VideoFrame | np.ndarray
    received_at: float


@dataclass
class _Mailbox:
    loop: asyncio.AbstractEventLoop
    on_result: ResultHandler
    analyser: FrameAnalyser
    pending: _Pending | None = None
    analysed: int = 0
    dropped: int = 0
    failed: int = 0


def to_bgr_array(frame: av.VideoFrame | np.ndarray, reformatter: VideoReformatter) -> np.ndarray:
    """The frame as a BGR array, converted with the caller's own reformatter.

    The same VideoFrame is also converted on the event loop (to draw on it when it cannot be drawn on in
    place); `frame.to_ndarray(format=...)` would share the frame's one swscale context between two
    threads, which crashes.
    """
    if isinstance(frame, np.ndarray):
        return frame
    return reformatter.reformat(frame, format="bgr24").to_ndarray()


class AnalysisWorker:
    """Runs each session's own analyser (from `source.open_stream()`) on its newest pending frame, the
    sessions in turn.

    With `lower_priority` the thread (and OpenCV in it) runs at
    `server.analysis.priority.ANALYSIS_NICENESS`; leave
    it off when the source only hands frames to a process that has lowered its own priority.
    """

    def __init__(
        self, source: AnalyserSource, metrics: ServerMetrics | None = None, lower_priority: bool = True
    ) -> None:
        self._source = source
        self._lower_priority = lower_priority
        self._metrics = metrics
        self._mailboxes: dict[str, _Mailbox] = {}
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
            self._mailboxes.clear()
            self._order.clear()
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def open(
        self, session_id: str, loop: asyncio.AbstractEventLoop, on_result: ResultHandler
    ) -> AnalysisSlot:
        """Give a session a mailbox and its own analyser; `on_result` is called on `loop` for each analysed
        frame. The analyser (stateful, e.g. following faces) only ever runs in the worker thread, one frame
        at a time."""
        analyser = self._source.open_stream()
        with self._wakeup:
            if session_id in self._mailboxes:
                raise ValueError(f"session {session_id} already has a mailbox")
            self._mailboxes[session_id] = _Mailbox(loop=loop, on_result=on_result, analyser=analyser)
            self._order.append(session_id)
        return AnalysisSlot(self, session_id)

    def close(self, session_id: str) -> None:
        """Forget a session: its pending frame is dropped and no result reaches it any more."""
        with self._wakeup:
            if self._mailboxes.pop(session_id, None) is None:
                return
            index = self._order.index(session_id)
            self._order.pop(index)
            if index < self._cursor:
                self._cursor -= 1

    def submit(self, session_id: str, number: int, frame: av.VideoFrame | np.ndarray) -> bool:
        """Put the frame in the session's mailbox; True when it replaced one that was never analysed."""
        with self._wakeup:
            mailbox = self._mailboxes.get(session_id)
            if mailbox is None:
                return False
            replaced = mailbox.pending is not None
            if replaced:
                mailbox.dropped += 1
                if self._metrics is not None:
                    self._metrics.frames_dropped.labels(stage="analysis").inc()
            mailbox.pending = _Pending(number=number, frame=frame, received_at=time.monotonic())
            self._wakeup.notify()
            return replaced

    def _take_next(self) -> tuple[str, _Mailbox, _Pending] | None:
        """Round-robin from the session after the last one served; None when nothing waits."""
        count = len(self._order)
        for offset in range(count):
            index = (self._cursor + offset) % count
            session_id = self._order[index]
            mailbox = self._mailboxes[session_id]
            if mailbox.pending is not None:
                pending, mailbox.pending = mailbox.pending, None
                self._cursor = (index + 1) % count
                return session_id, mailbox, pending
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

    def _analyse(self, session_id: str, mailbox: _Mailbox, pending: _Pending) -> None:
        started = time.monotonic()
        try:
            image = to_bgr_array(pending.frame, self._reformatter)
            detections = tuple(mailbox.analyser.analyse(image))
        except Exception:
            mailbox.failed += 1
            if mailbox.failed == 1:
                logger.exception("analysis of a frame failed", extra={"session": session_id})
            return
        finished = time.monotonic()
        mailbox.analysed += 1
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
            analysed=mailbox.analysed,
            dropped=mailbox.dropped,
        )
        try:
            mailbox.loop.call_soon_threadsafe(self._deliver, session_id, mailbox, result)
        except RuntimeError:
            # The session's event loop is closed: nobody is left to take the result.
            self.close(session_id)

    def _deliver(self, session_id: str, mailbox: _Mailbox, result: AnalysisResult) -> None:
        """On the session's loop: hand over the result unless the session closed meanwhile."""
        with self._wakeup:
            if self._mailboxes.get(session_id) is not mailbox:
                return
        try:
            mailbox.on_result(result)
        except Exception:
            logger.exception("a session's result handler failed", extra={"session": session_id})
