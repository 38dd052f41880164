"""One session's passages: its analysed frames through a `PassageTracker`, finished passages to the history.

Runs on the event loop, per analysed frame: matching a handful of faces, no I/O. A finished passage is
counted (`maskcam_passages_total{location,label}`, at most `MAX_LOCATION_LABELS` locations) and handed to
the sink (the history writer's queue), which never blocks. What the sink receives holds no box and no
image (`PassageRecord`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from server.history.store import PassageRecord
from server.metrics import ServerMetrics
from vision.passages import Passage, PassageRule, PassageTracker, Sighting
from vision.pipeline import Detection
from vision.stream import FollowedDetection


class PassageSink(Protocol):
    def submit(self, record: PassageRecord) -> bool: ...


class LiveObserver(Protocol):
    """Who follows each camera's faces as they are now (the events' live state, `server.events`); called
    on the event loop, never blocks."""

    def camera_opened(self, location: str) -> None: ...

    def frame(self, location: str, labels: Sequence[str]) -> None: ...


def sightings(detections: Sequence[Detection]) -> list[Sighting]:
    """The faces of one frame, with their face ids where the analyser follows them."""
    return [
        Sighting(
            face_id=detection.face_id if isinstance(detection, FollowedDetection) else None,
            label=detection.label,
            box=detection.box,
        )
        for detection in detections
    ]


def to_record(passage: Passage, location: str) -> PassageRecord:
    return PassageRecord(
        uid=uuid.uuid4().hex,
        start_ms=round(passage.start * 1000),
        location=location,
        label=passage.label,
        confidence=round(passage.confidence, 4),
        seconds=round(passage.seconds, 3),
        frames=passage.frames,
        size=passage.size,
        label_changed=passage.label_changed,
    )


class SessionPassages:
    """The passages of one camera at `location`."""

    def __init__(
        self,
        location: str,
        rule: PassageRule,
        sink: PassageSink | None = None,
        metrics: ServerMetrics | None = None,
        on_finish: Callable[[SessionPassages], None] | None = None,
        observer: LiveObserver | None = None,
    ) -> None:
        self.location = location
        self._observer = observer
        self._on_finish = on_finish
        self.since = time.time()
        self._tracker = PassageTracker(rule)
        self._sink = sink
        self._metrics = metrics
        self.finished = 0

    @property
    def current(self) -> list[str]:
        """Labels of the faces in front of the camera now."""
        return self._tracker.current

    def observe(self, received_at: float, detections: Sequence[Detection]) -> None:
        """One analysed frame; `received_at` is when it reached the server (time.monotonic)."""
        at = time.time() - (time.monotonic() - received_at)
        self._emit(self._tracker.observe(at, sightings(detections)))
        if self._observer is not None:
            self._observer.frame(self.location, [detection.label for detection in detections])

    def finish(self) -> None:
        """The session ended: every passage still open ends now."""
        try:
            self._emit(self._tracker.finish())
            if self._observer is not None:
                self._observer.frame(self.location, ())
        finally:
            if self._on_finish is not None:
                self._on_finish(self)

    def _emit(self, passages: list[Passage]) -> None:
        for passage in passages:
            self.finished += 1
            if self._metrics is not None:
                self._metrics.count_passage(self.location, passage.label)
            if self._sink is not None:
                self._sink.submit(to_record(passage, self.location))
