"""The analysis threads of the server, fed by a one-slot "newest frame" mailbox per session.

Each analyser source (an analysis process, `server.analysis.process.AnalysisProcess`) is a *lane* with
one thread; a session is given the lane with the fewest sessions when it opens, and stays there (its
face-following state lives in that lane's process). Within a lane frames are analysed one after the
other, the lane's sessions served round-robin. The thread only converts the frame to BGR (the one colour
conversion on a frame's way to the models) and waits while the models run in their own process, so with
one lane the process sat idle while the thread converted the next frame and, on a busy event loop, waited
for the interpreter lock (bench/RESULTS.md, issue 22: 55 % of a core used at 4 cameras for 7.7 analysed
frames/s each); a second lane computes meanwhile, and uses the second core when the cameras leave it free.
A source given directly (tests, the models in this process) runs in its lane's thread at low priority. A
session that submits a frame while its previous one still waits replaces it (counted as dropped), so no
queue can grow; results go back to each session's event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
class _Lane:
    """One analyser source and the thread that serves its sessions."""

    index: int
    source: AnalyserSource
    wakeup: threading.Condition
    order: list[str] = field(default_factory=list)
    cursor: int = 0
    thread: threading.Thread | None = None


@dataclass
class _Mailbox:
    loop: asyncio.AbstractEventLoop
    on_result: ResultHandler
    analyser: FrameAnalyser
    lane: _Lane
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
    """Runs each session's own analyser (from its lane's `source.open_stream()`) on its newest pending
    frame, the sessions of a lane in turn, the lanes side by side.

    `source` is one analyser source or several (one lane each). With `lower_priority` the threads (and
    OpenCV in them) run at `server.analysis.priority.ANALYSIS_NICENESS`; leave it off when the sources only
    hand frames to processes that have lowered their own priority.
    """

    def __init__(
        self,
        source: AnalyserSource | Sequence[AnalyserSource],
        metrics: ServerMetrics | None = None,
        lower_priority: bool = True,
    ) -> None:
        sources = list(source) if isinstance(source, Sequence) else [source]
        if not sources:
            raise ValueError("the analysis worker needs at least one analyser source")
        self._lower_priority = lower_priority
        self._metrics = metrics
        self._lock = threading.Lock()
        self._lanes = [_Lane(i, s, threading.Condition(self._lock)) for i, s in enumerate(sources)]
        self._mailboxes: dict[str, _Mailbox] = {}
        self._stopping = False
        self._started = False

    @property
    def sessions(self) -> list[str]:
        with self._lock:
            return [session_id for lane in self._lanes for session_id in lane.order]

    @property
    def lanes(self) -> list[list[str]]:
        """The sessions of each lane, in lane order."""
        with self._lock:
            return [list(lane.order) for lane in self._lanes]

    @property
    def running(self) -> bool:
        return self._started and all(
            lane.thread is not None and lane.thread.is_alive() for lane in self._lanes
        )

    def start(self) -> None:
        if self._started:
            raise RuntimeError("the analysis worker was already started")
        self._started = True
        for lane in self._lanes:
            name = "analysis-worker" if len(self._lanes) == 1 else f"analysis-worker-{lane.index}"
            lane.thread = threading.Thread(target=self._run, args=(lane,), name=name, daemon=True)
            lane.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the analyses in progress, drop pending frames and join the threads."""
        with self._lock:
            self._stopping = True
            self._mailboxes.clear()
            for lane in self._lanes:
                lane.order.clear()
                lane.wakeup.notify_all()
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(timeout)

    def open(
        self, session_id: str, loop: asyncio.AbstractEventLoop, on_result: ResultHandler
    ) -> AnalysisSlot:
        """Give a session a mailbox in the lane with the fewest sessions and its own analyser from that
        lane's source; `on_result` is called on `loop` for each analysed frame. The analyser (stateful,
        e.g. following faces) only ever runs in its lane's thread, one frame at a time."""
        with self._lock:
            lane = min(self._lanes, key=lambda candidate: (len(candidate.order), candidate.index))
        analyser = lane.source.open_stream()
        with self._lock:
            if session_id in self._mailboxes:
                raise ValueError(f"session {session_id} already has a mailbox")
            self._mailboxes[session_id] = _Mailbox(
                loop=loop, on_result=on_result, analyser=analyser, lane=lane
            )
            lane.order.append(session_id)
        return AnalysisSlot(self, session_id)

    def close(self, session_id: str) -> None:
        """Forget a session: its pending frame is dropped and no result reaches it any more."""
        with self._lock:
            mailbox = self._mailboxes.pop(session_id, None)
            if mailbox is None:
                return
            lane = mailbox.lane
            index = lane.order.index(session_id)
            lane.order.pop(index)
            if index < lane.cursor:
                lane.cursor -= 1

    def submit(self, session_id: str, number: int, frame: av.VideoFrame | np.ndarray) -> bool:
        """Put the frame in the session's mailbox; True when it replaced one that was never analysed."""
        with self._lock:
            mailbox = self._mailboxes.get(session_id)
            if mailbox is None:
                return False
            replaced = mailbox.pending is not None
            if replaced:
                mailbox.dropped += 1
                if self._metrics is not None:
                    self._metrics.frames_dropped.labels(stage="analysis").inc()
            mailbox.pending = _Pending(number=number, frame=frame, received_at=time.monotonic())
            mailbox.lane.wakeup.notify()
            return replaced

    def _take_next(self, lane: _Lane) -> tuple[str, _Mailbox, _Pending] | None:
        """Round-robin from the lane's session after the last one served; None when nothing waits."""
        count = len(lane.order)
        for offset in range(count):
            index = (lane.cursor + offset) % count
            session_id = lane.order[index]
            mailbox = self._mailboxes[session_id]
            if mailbox.pending is not None:
                pending, mailbox.pending = mailbox.pending, None
                lane.cursor = (index + 1) % count
                return session_id, mailbox, pending
        return None

    def _run(self, lane: _Lane) -> None:
        if self._lower_priority:
            lower_analysis_priority()
        # Each lane converts with its own reformatter: one swscale context must not serve two threads.
        reformatter = VideoReformatter()
        while True:
            with self._lock:
                job = None
                while not self._stopping and (job := self._take_next(lane)) is None:
                    lane.wakeup.wait()
                if self._stopping or job is None:
                    return
            self._analyse(*job, reformatter)

    def _analyse(
        self, session_id: str, mailbox: _Mailbox, pending: _Pending, reformatter: VideoReformatter
    ) -> None:
        started = time.monotonic()
        try:
            image = to_bgr_array(pending.frame, reformatter)
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
        with self._lock:
            if self._mailboxes.get(session_id) is not mailbox:
                return
        try:
            mailbox.on_result(result)
        except Exception:
            logger.exception("a session's result handler failed", extra={"session": session_id})
