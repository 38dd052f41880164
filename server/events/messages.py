"""What the events say, typed: a stored passage, a location's live verdict, a location's counts today.

Each carries exactly what the history or the live page shows already and nothing more: no image, no
box, no embedding, no face id (README.md's privacy lines).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vision.labels import LABEL_VERDICTS

NO_FACE = "none"


def _json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class PassageEvent:
    """One stored passage: `/api/passages`'s row of it (with its `uid`) and its `start_ms`."""

    uid: str
    location: str
    body: Mapping[str, Any]

    def to_json(self) -> str:
        return _json(self.body)

    @classmethod
    def from_json(cls, text: str) -> PassageEvent:
        body = json.loads(text)
        return cls(uid=str(body["uid"]), location=str(body["location"]), body=body)


def verdict_of(labels: Sequence[str]) -> str:
    """The scene's verdict by its most urgent face (LABEL_VERDICTS' order), `none` without a face."""
    for label, verdict in LABEL_VERDICTS.items():
        if label in labels:
            return verdict
    return NO_FACE


@dataclass(frozen=True)
class LiveState:
    """What a location's camera sees now: the verdict and the number of faces (retained `state`)."""

    location: str
    verdict: str
    faces: int
    at: float
    """Epoch seconds of the frame that changed it."""

    @classmethod
    def of(cls, location: str, labels: Sequence[str], at: float | None = None) -> LiveState:
        return cls(location, verdict_of(labels), len(labels), time.time() if at is None else at)

    def same_as(self, other: LiveState | None) -> bool:
        """Whether nothing a receiver shows changed (the time alone does not count)."""
        return other is not None and (other.verdict, other.faces) == (self.verdict, self.faces)

    def to_json(self) -> str:
        time_ms = round(self.at * 1000)
        return _json(
            {"location": self.location, "verdict": self.verdict, "faces": self.faces, "time_ms": time_ms}
        )


@dataclass(frozen=True)
class TodayCounts:
    """A location's passages today (`/api/today/location`'s counts): people, one count per label, and
    `compliance` (0-1, null with nobody)."""

    location: str
    date: str
    counts: Mapping[str, Any]

    def to_json(self) -> str:
        return _json({"location": self.location, "date": self.date, **self.counts})


Update = LiveState | TodayCounts
"""What a sink shows as the latest value of a location (retained on MQTT), not a queued delivery."""
