"""The models in a child process that runs only on idle CPU time, so that analysis never holds up the video.

In a thread of the server process, the analysis shares the interpreter lock with the event loop that moves
every camera's video. At low priority (so that the video comes first when the cores are busy) the thread
was sometimes descheduled while holding that lock, and the event loop of every session waited for it:
latency spikes on all cameras at once. In its own process the analysis has its own interpreter; the
operating system's priorities then work as intended.

`AnalysisProcess` is what the server analyses with by default: the analysis worker thread puts each frame
(BGR) in a shared-memory buffer, sends its shape through a pipe and waits for the detections while the
child computes them (sending the pixels through the pipe took a fifth of the child's time). The child runs
under SCHED_IDLE (`run_only_on_idle_cpu`). Each session's `RemoteStream` has its face-following state in
the child. A child that dies (a crash in native code) is started again on the next frame; the frame in
flight fails with `AnalysisProcessError`.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import cv2
import numpy as np

from server.analysis import StreamAnalyserSource, load_pipeline
from server.config import ServerConfig
from server.memory import use_fixed_mmap_threshold
from server.worker import ANALYSIS_NICENESS, FrameAnalyser
from vision.classifier import ModelFileError
from vision.detector import DetectorFileError
from vision.pipeline import Detection

logger = logging.getLogger(__name__)

MIN_FRAME_BUFFER = 1280 * 720 * 3
"""Bytes of the shared frame buffer at first (a 720p BGR frame); it grows for larger frames."""

RESTART_BACKOFF_S = 10.0
"""After a failed restart, frames fail at once (no new attempt) for this many seconds."""

START_TIMEOUT_S = 120.0
"""Loading the models takes a few seconds; a child that says nothing for this long is given up."""


class AnalysisProcessError(RuntimeError):
    """The child process failed to start or died while analysing a frame."""


def run_only_on_idle_cpu() -> None:
    """Put every thread of this process under Linux's SCHED_IDLE policy (threads started later inherit it;
    importing numpy has already started OpenBLAS's): the kernel then runs them only when no normal task
    wants the core, and a waking video task preempts them at once. At nice 10 the analysis still took its
    share of a busy core and the video waited for the end of its time slice: with 4 cameras, latency p95
    42-106 ms at nice 10, 31-80 ms under SCHED_IDLE (bench/RESULTS.md, step 27). Falls back to nice 10
    where the policy is refused."""
    if not sys.platform.startswith("linux"):
        return
    try:
        for thread in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(thread), os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:
        logger.warning("SCHED_IDLE refused (%s); the analysis runs at nice %d", exc, ANALYSIS_NICENESS)
        os.nice(ANALYSIS_NICENESS)


def _serve(config: ServerConfig, connection: Connection) -> None:
    """The child: load the models, then answer one request at a time until the pipe closes."""
    run_only_on_idle_cpu()
    cv2.setNumThreads(1)
    use_fixed_mmap_threshold()
    try:
        pipeline = load_pipeline(config)
    except (ModelFileError, DetectorFileError) as exc:
        connection.send(("error", str(exc)))
        return
    except Exception as exc:
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    connection.send(("ready", None))
    streams: dict[int, FrameAnalyser] = {}
    frames: SharedMemory | None = None
    while True:
        try:
            stream_id, shape, closed, frames_name = connection.recv()
        except (EOFError, OSError):
            break
        for gone in closed:
            streams.pop(gone, None)
        if frames is None or frames.name != frames_name:
            if frames is not None:
                frames.close()
            # The parent creates and removes the buffer; this process shares its resource tracker.
            frames = SharedMemory(name=frames_name)
        image = np.ndarray(shape, dtype=np.uint8, buffer=frames.buf)
        analyser: FrameAnalyser = pipeline
        if stream_id is not None:
            if stream_id not in streams:
                streams[stream_id] = (
                    pipeline.new_stream() if isinstance(pipeline, StreamAnalyserSource) else pipeline
                )
            analyser = streams[stream_id]
        try:
            reply: tuple[str, Any] = ("ok", list(analyser.analyse(image)))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        del image
        connection.send(reply)
    if frames is not None:
        frames.close()


class AnalysisProcess:
    """The configured detector and classifier, run in a child process; one frame at a time."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._stream_ids = itertools.count()
        self._closed_streams: list[int] = []
        self._closed_lock = threading.Lock()
        self._process: Any = None
        self._connection: Connection | None = None
        self._frames: SharedMemory | None = None
        self._closed = False
        self._retry_at: float | None = None
        self.last_error: str | None = None
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve, args=(self._config, child_end), name="mask-analysis", daemon=True
        )
        process.start()
        child_end.close()
        if not parent_end.poll(START_TIMEOUT_S):
            process.kill()
            raise AnalysisProcessError(f"the analysis process did not start within {START_TIMEOUT_S:.0f} s")
        try:
            kind, detail = parent_end.recv()
        except EOFError:
            process.join(5)
            kind, detail = "error", f"the analysis process exited with code {process.exitcode}"
        if kind != "ready":
            process.join(5)
            raise AnalysisProcessError(str(detail))
        self._process, self._connection = process, parent_end

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    @property
    def available(self) -> bool:
        """Whether a child is running to take frames (false after a failed restart, until one succeeds)."""
        return not self._closed and self._process is not None and self._process.is_alive()

    def analyse(self, image: np.ndarray, stream: int | None = None) -> list[Detection]:
        """Detections of one BGR image: by the full pipeline, or by `stream`'s face-following analyser."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        with self._lock:
            if self._closed:
                raise AnalysisProcessError("the analysis process is closed")
            if self._connection is None or not self._process.is_alive():
                self._restart("it is not running")
            assert self._connection is not None
            with self._closed_lock:
                closed, self._closed_streams = self._closed_streams, []
            frames = self._frame_buffer(image.nbytes)
            np.ndarray(image.shape, dtype=np.uint8, buffer=frames.buf)[...] = image
            try:
                self._connection.send((stream, image.shape, closed, frames.name))
                kind, detail = self._connection.recv()
            except (EOFError, OSError) as exc:
                self._restart(f"the pipe failed: {exc}")
                raise AnalysisProcessError(
                    "the analysis process died during a frame; it was restarted"
                ) from exc
        if kind != "ok":
            raise AnalysisProcessError(f"analysis failed in the analysis process: {detail}")
        return list(detail)

    def _frame_buffer(self, size: int) -> SharedMemory:
        """The shared buffer the frames go through, grown when a frame does not fit."""
        if self._frames is None or self._frames.size < size:
            self._release_frames()
            self._frames = SharedMemory(create=True, size=max(size, MIN_FRAME_BUFFER))
        return self._frames

    def _release_frames(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames.unlink()
            self._frames = None

    def new_stream(self) -> RemoteStream:
        return RemoteStream(self, next(self._stream_ids))

    def forget_stream(self, stream: int) -> None:
        """Let the child drop a stream's state (sent with the next frame; never blocks)."""
        with self._closed_lock:
            self._closed_streams.append(stream)

    def _restart(self, why: str) -> None:
        """Start a new child; after a failed start, try again only once `RESTART_BACKOFF_S` has passed
        (loading the models takes seconds, and a missing model file does not come back by itself)."""
        now = time.monotonic()
        if self._retry_at is not None and now < self._retry_at:
            raise AnalysisProcessError(f"the analysis process is down: {self.last_error}")
        if self._process is not None:
            logger.error("the analysis process (pid %s) failed (%s); starting a new one", self.pid, why)
        self._stop_child()
        self.restarts += 1
        try:
            self._start()
        except AnalysisProcessError as exc:
            self.last_error = str(exc)
            self._retry_at = now + RESTART_BACKOFF_S
            logger.error("the analysis process could not be started: %s", exc)
            raise
        self._retry_at = None
        self.last_error = None

    def _stop_child(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            self._process.join(2.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(2.0)
            self._process = None

    def close(self) -> None:
        """Stop the child (closing the pipe ends its loop) and remove the frame buffer."""
        with self._lock:
            self._closed = True
            self._stop_child()
            self._release_frames()


class RemoteStream:
    """One session's face-following analyser, living in the analysis process."""

    def __init__(self, process: AnalysisProcess, stream: int) -> None:
        self._process = process
        self.stream = stream
        weakref.finalize(self, process.forget_stream, stream)

    def analyse(self, image: np.ndarray) -> Sequence[Detection]:
        return self._process.analyse(image, self.stream)
