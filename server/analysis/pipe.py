"""The messages on the pipe between the server and its analysis process (`server.analysis.process`).

The pixels do not travel in them: the server writes each frame into a shared-memory buffer, and a request
names that buffer and the frame's shape (pickling the pixels through the pipe cost the child a large share
of its time; bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from vision.pipeline import Detection


@dataclass(frozen=True)
class Ready:
    """The child loaded the models and waits for frames."""


@dataclass(frozen=True)
class StartFailed:
    """The child could not load the models (a missing file, ...); it exits after sending this."""

    reason: str


@dataclass(frozen=True)
class AnalyseFrame:
    """Analyse the frame now in `buffer_name` for one stream; first drop the state of `forgotten`."""

    stream_id: int
    """The camera whose face-following analyser takes the frame; None: the full pipeline, no state."""
    shape: tuple[int, ...]
    buffer_name: str
    """The shared-memory buffer (`multiprocessing.shared_memory.SharedMemory.name`) holding the frame."""
    forgotten: tuple[int, ...] = ()
    """Streams closed since the last request, whose analysers the child drops."""


@dataclass(frozen=True)
class Analysed:
    """The detections of the requested frame."""

    detections: tuple[Detection, ...]


@dataclass(frozen=True)
class AnalysisFailed:
    """Analysing the requested frame raised in the child (which goes on serving)."""

    reason: str


StartReply = Ready | StartFailed
FrameReply = Analysed | AnalysisFailed
