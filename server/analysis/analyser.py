"""What the server analyses frames with, and what an analysis gives back: the seam between the video
transport (server.rtc.track, server.rtc.session) and the models (server.analysis.models,
server.analysis.process).

Every camera gets its own `FrameAnalyser` from the server's one `AnalyserSource`, the same way whatever the
source is (`open_stream()`): a stateless source hands every stream the same analyser, a face-following one
a new `vision.stream.StreamAnalyser` each time, and the analysis process a proxy to one in the child.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vision.pipeline import Detection


class FrameAnalyser(Protocol):
    """One camera's analyser: the detections of each BGR frame, given in the camera's order."""

    def analyse(self, image: np.ndarray) -> Sequence[Detection]: ...


class AnalyserSource(Protocol):
    """The server's models, as the sessions see them: each camera opens its own stream."""

    def open_stream(self) -> FrameAnalyser: ...


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
