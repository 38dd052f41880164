"""The models in a child process that runs only on idle CPU time, so that analysis never holds up the video.

In a thread of the server process, the analysis shares the interpreter lock with the event loop that moves
every camera's video. At low priority (so that the video comes first when the cores are busy) the thread
was sometimes descheduled while holding that lock, and the event loop of every session waited for it:
latency spikes on all cameras at once. In its own process the analysis has its own interpreter; the
operating system's priorities then work as intended.

`AnalysisProcess` is the server's analyser source: the analysis worker thread puts each frame (BGR) in a
shared-memory buffer, sends an `AnalyseFrame` request through a pipe and waits for the reply while the
child computes it (the messages are in `server.analysis.pipe`). The child runs under SCHED_IDLE
(`server.analysis.priority.run_only_on_idle_cpu`) and builds the models with
`server.analysis.models.load_models`. Each
camera's `RemoteAnalyser` has its face-following state in the child. A child that dies (a crash in native
code) is started again on the next frame; the frame in flight fails with `AnalysisProcessError`. So is a
child that holds a frame for `FRAME_TIMEOUT_S` without answering and without being runnable (stopped, or
asleep in a deadlock in native code): without that, one hung child would stop the analysis of every
camera for good while their video kept flowing. A child that is runnable is left to finish: it is
computing, or waiting for a core on a machine kept busy by other work (it runs only on idle CPU), and a
new child would be no faster, only without the cameras' face-following state.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import multiprocessing
import threading
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import cv2
import numpy as np
import psutil

from server.analysis.analyser import FrameAnalyser
from server.analysis.models import load_models
from server.analysis.pipe import (
    Analysed,
    AnalyseFrame,
    AnalysisFailed,
    FrameReply,
    Ready,
    StartFailed,
    StartReply,
)
from server.analysis.priority import run_only_on_idle_cpu
from server.memory import use_heap_for_analysis
from server.settings import ServerConfig
from vision.classifier import ModelFileError
from vision.detector import DetectorFileError
from vision.pipeline import Detection
from vision.stream import FollowedDetection

logger = logging.getLogger(__name__)

MIN_FRAME_BUFFER = 1280 * 720 * 3
"""Bytes of the shared frame buffer at first (a 720p BGR frame); it grows for larger frames."""

RESTART_BACKOFF_S = 10.0
"""After a failed restart, frames fail at once (no new attempt) for this many seconds."""

FRAME_TIMEOUT_S = 30.0
"""After this many seconds without a reply to a frame the child is looked at: started again when it is not
runnable (hung), else waited for another period. Far above any frame's analysis time (bench/RESULTS.md)."""

FACE_ID_SPAN = 1 << 32
"""The face ids of the n-th child (n from 0) lie in [n * SPAN, (n + 1) * SPAN). A restarted child counts
its followed faces from 0 again, but a session's passage tracker (`vision.passages`) outlives the child:
with recycled ids it would take a new person for one it followed before the restart, and count two
people as one passage."""

START_TIMEOUT_S = 120.0
"""Loading the models takes a few seconds; a child that says nothing for this long is given up."""


class AnalysisProcessError(RuntimeError):
    """The child process failed to start or died while analysing a frame."""


def _serve(config: ServerConfig, connection: Connection) -> None:
    """The child: load the models, then answer one `AnalyseFrame` at a time until the pipe closes."""
    run_only_on_idle_cpu()
    cv2.setNumThreads(1)
    use_heap_for_analysis()
    try:
        models = load_models(config)
    except (ModelFileError, DetectorFileError) as exc:
        connection.send(StartFailed(str(exc)))
        return
    except Exception as exc:
        connection.send(StartFailed(f"{type(exc).__name__}: {exc}"))
        return
    connection.send(Ready())
    streams: dict[int, FrameAnalyser] = {}
    buffer: SharedMemory | None = None
    while True:
        try:
            request: AnalyseFrame = connection.recv()
        except (EOFError, OSError):
            break
        for gone in request.forgotten:
            streams.pop(gone, None)
        if buffer is None or buffer.name != request.buffer_name:
            if buffer is not None:
                buffer.close()
            # The parent creates and removes the buffer; this process shares its resource tracker.
            buffer = SharedMemory(name=request.buffer_name)
        image = np.ndarray(request.shape, dtype=np.uint8, buffer=buffer.buf)
        if request.stream_id not in streams:
            streams[request.stream_id] = models.open_stream()
        analyser = streams[request.stream_id]
        try:
            reply: FrameReply = Analysed(tuple(analyser.analyse(image)))
        except Exception as exc:
            reply = AnalysisFailed(f"{type(exc).__name__}: {exc}")
        del image
        connection.send(reply)
    if buffer is not None:
        buffer.close()


class _NoReply(Exception):
    """The child took a frame and did not answer in time."""


class _Child:
    """One running child process and the server's end of its pipe."""

    def __init__(self, config: ServerConfig) -> None:
        """Start the child and wait until it has loaded the models; AnalysisProcessError if it cannot."""
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_serve, args=(config, child_end), name="mask-analysis", daemon=True)
        process.start()
        child_end.close()
        if not parent_end.poll(START_TIMEOUT_S):
            process.kill()
            raise AnalysisProcessError(f"the analysis process did not start within {START_TIMEOUT_S:.0f} s")
        try:
            reply: StartReply = parent_end.recv()
        except EOFError:
            process.join(5)
            reply = StartFailed(f"the analysis process exited with code {process.exitcode}")
        if isinstance(reply, StartFailed):
            process.join(5)
            raise AnalysisProcessError(reply.reason)
        self.process: Any = process
        self.connection = parent_end

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    @property
    def runnable(self) -> bool:
        """Whether the child is running or waiting for a core (Linux state R), not stopped or asleep."""
        try:
            return bool(psutil.Process(self.process.pid).status() == psutil.STATUS_RUNNING)
        except psutil.Error:
            return False

    def exchange(self, request: AnalyseFrame, timeout_s: float) -> FrameReply:
        """Send one request and wait for its reply; EOFError or OSError when the pipe broke, `_NoReply`
        when ``timeout_s`` passed without a reply and the child is not runnable (see the module doc)."""
        self.connection.send(request)
        waited = 0.0
        while not self.connection.poll(timeout_s):
            waited += timeout_s
            if not self.runnable:
                raise _NoReply(f"no reply to a frame within {waited:g} s and the process is not running")
            logger.warning(
                "the analysis process has been on one frame for %g s and is still running: the machine "
                "leaves it little idle CPU",
                waited,
            )
        reply: FrameReply = self.connection.recv()
        return reply

    def stop(self) -> None:
        """Close the pipe (which ends the child's loop), then make sure the child is gone."""
        self.connection.close()
        self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)


class AnalysisProcess:
    """The configured detector and classifier, run in a child process; one frame at a time.

    An `AnalyserSource`: `open_stream()` gives a camera its `RemoteAnalyser`. `analyse` runs the full
    pipeline on one frame with no face following.
    """

    def __init__(self, config: ServerConfig, frame_timeout_s: float = FRAME_TIMEOUT_S) -> None:
        self._config = config
        self.frame_timeout_s = frame_timeout_s
        self._lock = threading.Lock()
        """Held for a whole request: one frame in the pipe at a time, and restarts never overlap it."""
        self._stream_ids = itertools.count()
        self._forgotten: collections.deque[int] = collections.deque()
        """Closed streams not yet sent to the child; appended from any thread (finalizers), never locked."""
        self._buffer: SharedMemory | None = None
        self._shut_down = False
        self._retry_at: float | None = None
        self.last_error: str | None = None
        self.restarts = 0
        self._child: _Child | None = _Child(config)

    @property
    def pid(self) -> int | None:
        return None if self._child is None else int(self._child.process.pid)

    @property
    def available(self) -> bool:
        """Whether a child is running to take frames (false after a failed restart, until one succeeds)."""
        return not self._shut_down and self._child is not None and self._child.alive

    def open_stream(self) -> RemoteAnalyser:
        return RemoteAnalyser(self, next(self._stream_ids))

    def forget_stream(self, stream_id: int) -> None:
        """Let the child drop a stream's state (sent with the next frame; never blocks)."""
        self._forgotten.append(stream_id)

    def analyse(self, image: np.ndarray, stream_id: int) -> list[Detection]:
        """Detections of one BGR image by the stream's analyser in the child (`open_stream`)."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        with self._lock:
            child = self._running_child()
            generation = self.restarts  # the child that answers this frame
            buffer = self._frame_buffer(image.nbytes)
            np.ndarray(image.shape, dtype=np.uint8, buffer=buffer.buf)[...] = image
            request = AnalyseFrame(stream_id, image.shape, buffer.name, self._take_forgotten())
            try:
                reply = child.exchange(request, self.frame_timeout_s)
            except (EOFError, OSError) as exc:
                self._restart(f"the pipe failed: {exc}")
                raise AnalysisProcessError(
                    "the analysis process died during a frame; it was restarted"
                ) from exc
            except _NoReply as exc:
                self._restart(f"{exc}: hung")
                raise AnalysisProcessError(f"the analysis process gave {exc}; it was restarted") from exc
        if isinstance(reply, AnalysisFailed):
            raise AnalysisProcessError(f"analysis failed in the analysis process: {reply.reason}")
        return _ids_of_generation(reply.detections, generation)

    def _take_forgotten(self) -> tuple[int, ...]:
        forgotten = []
        while self._forgotten:
            forgotten.append(self._forgotten.popleft())
        return tuple(forgotten)

    def _running_child(self) -> _Child:
        """The child to send the frame to, started again if it died (under `_lock`)."""
        if self._shut_down:
            raise AnalysisProcessError("the analysis process is closed")
        if self._child is None or not self._child.alive:
            self._restart("it is not running")
        assert self._child is not None
        return self._child

    def _frame_buffer(self, size: int) -> SharedMemory:
        """The shared buffer the frames go through, grown when a frame does not fit."""
        if self._buffer is None or self._buffer.size < size:
            self._release_buffer()
            self._buffer = SharedMemory(create=True, size=max(size, MIN_FRAME_BUFFER))
        return self._buffer

    def _release_buffer(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer.unlink()
            self._buffer = None

    def _restart(self, why: str) -> None:
        """Start a new child; after a failed start, try again only once `RESTART_BACKOFF_S` has passed
        (loading the models takes seconds, and a missing model file does not come back by itself)."""
        now = time.monotonic()
        if self._retry_at is not None and now < self._retry_at:
            raise AnalysisProcessError(f"the analysis process is down: {self.last_error}")
        if self._child is not None:
            logger.error("the analysis process (pid %s) failed (%s); starting a new one", self.pid, why)
            self._child.stop()
            self._child = None
        self.restarts += 1
        try:
            self._child = _Child(self._config)
        except AnalysisProcessError as exc:
            self.last_error = str(exc)
            self._retry_at = now + RESTART_BACKOFF_S
            logger.error("the analysis process could not be started: %s", exc)
            raise
        self._retry_at = None
        self.last_error = None

    def close(self) -> None:
        """Stop the child and remove the frame buffer; later frames fail."""
        with self._lock:
            self._shut_down = True
            if self._child is not None:
                self._child.stop()
                self._child = None
            self._release_buffer()


def _ids_of_generation(detections: Sequence[Detection], generation: int) -> list[Detection]:
    """The detections with their face ids moved into the answering child's own range (`FACE_ID_SPAN`)."""
    if generation == 0:
        return list(detections)
    offset = generation * FACE_ID_SPAN
    return [
        dataclasses.replace(d, face_id=d.face_id + offset) if isinstance(d, FollowedDetection) else d
        for d in detections
    ]


class RemoteAnalyser:
    """One camera's face-following analyser, living in the analysis process: a proxy that sends it frames."""

    def __init__(self, process: AnalysisProcess, stream_id: int) -> None:
        self._process = process
        self.stream_id = stream_id
        weakref.finalize(self, process.forget_stream, stream_id)

    def analyse(self, image: np.ndarray) -> Sequence[Detection]:
        return self._process.analyse(image, self.stream_id)
