"""Passages: one person in front of one camera, from the faces that a stream's analysis follows.

A face that the stream analyser follows has a stable face id (`vision.stream.FollowedDetection`). The
analyser drops a track when one full detection misses the face and starts a new one when it is found
again, so a person standing still can go through several face ids; a passage therefore goes on across
ids: a new face that appears, within the gap, where a passage's face was last seen continues it. A face
without an id (the full pipeline, `--detect-every 1`) is matched by position alone.

The rule (see docs/API.md for how it was measured):

- a passage ends once its face has not been seen for `gap` seconds (in frames that were analysed: a
  stall of the analysis is not an absence), or when the stream ends;
- it counts only when its face was seen in at least `min_frames` analysed frames (a detector blink
  is no person; Frigate needs 3 attempts before it names a tracked object's attribute);
- each frame votes for the label it showed; a frame is *confirmed* when its label held for at least
  `confirm_frames` frames in a row, so that a one-frame flicker of the classifier does not vote. The
  verdict is the label of most confirmed frames, the confidence that label's share of them (all frames
  when no label held that long); the passage says whether it had confirmed runs of more than one label
  (a mask put on or taken off in front of the camera).

Pure and synchronous: no clock, no I/O; times are given by the caller. Boxes live here only in memory,
to match faces; a finished `Passage` holds no box, only the face's size class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from vision.boxes import iou

SizeClass = Literal["small", "medium", "large"]
SMALL_FACE_PX = 64
"""A face whose box is shorter than this (analysed-frame pixels) is small: the classifier is least sure."""
LARGE_FACE_PX = 160
"""From this height on a face is large (someone right in front of the camera)."""
MATCH_IOU = 0.2
"""Overlap with a passage's last box above which a new, unknown face continues that passage."""


@dataclass(frozen=True)
class PassageRule:
    """When followed faces make a passage."""

    gap: float = 1.0
    """Seconds without the face after which its passage has ended."""
    min_frames: int = 3
    """Analysed frames a face must be seen in to count as a passage."""
    confirm_frames: int = 2
    """Frames in a row that a label must hold for its frames to vote for the verdict."""

    def __post_init__(self) -> None:
        if not self.gap > 0:
            raise ValueError(f"the passage gap must be positive, got {self.gap}")
        if self.min_frames < 1 or self.confirm_frames < 1:
            raise ValueError("min_frames and confirm_frames must be at least 1")


@dataclass(frozen=True)
class Sighting:
    """One face in one analysed frame: its face id (None when nobody follows it), label and box."""

    face_id: int | None
    label: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Passage:
    """One finished passage: nothing in it identifies the person."""

    start: float
    """Epoch seconds of the first frame the face was seen in."""
    seconds: float
    """From the first to the last frame the face was seen in."""
    label: str
    confidence: float
    """Share of the confirmed frames that showed `label` (0..1)."""
    frames: int
    """Analysed frames the face was seen in."""
    size: SizeClass
    label_changed: bool
    """Confirmed runs of more than one label (e.g. a mask put on in front of the camera)."""


def size_class(height_px: float) -> SizeClass:
    """The size class of a face of this box height, in analysed-frame pixels."""
    if height_px < SMALL_FACE_PX:
        return "small"
    if height_px < LARGE_FACE_PX:
        return "medium"
    return "large"


@dataclass
class _Open:
    """A passage still going on."""

    start: float
    last_seen: float
    box: tuple[int, int, int, int]
    labels: list[str] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)

    def add(self, at: float, sighting: Sighting) -> None:
        self.last_seen = at
        self.box = sighting.box
        self.labels.append(sighting.label)
        self.heights.append(sighting.box[3] - sighting.box[1])


def verdict(labels: Sequence[str], confirm_frames: int) -> tuple[str, float, bool]:
    """(label, confidence, label changed) of one face's per-frame labels, by the rule above."""
    if not labels:
        raise ValueError("a passage has at least one frame")
    runs: list[tuple[str, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    confirmed = [(label, length) for label, length in runs if length >= confirm_frames]
    if not confirmed:
        confirmed = runs
    votes: Counter[str] = Counter()
    for label, length in confirmed:
        votes[label] += length
    # Ties go to the label seen first, so that the result does not depend on dict order.
    first_seen = {label: index for index, (label, _) in reversed(list(enumerate(confirmed)))}
    best = max(votes, key=lambda label: (votes[label], -first_seen[label]))
    changed = len({label for label, length in runs if length >= confirm_frames}) > 1
    return best, votes[best] / sum(votes.values()), changed


class PassageTracker:
    """The passages of one stream: `observe` each analysed frame in order, `finish` when it ends."""

    def __init__(self, rule: PassageRule | None = None) -> None:
        self.rule = rule or PassageRule()
        self._open: list[_Open] = []
        self._by_face: dict[int, _Open] = {}
        self.blinks = 0
        """Faces dropped for being seen in fewer than `min_frames` frames."""
        self._current: list[str] = []

    @property
    def current(self) -> list[str]:
        """The labels of the faces in the newest observed frame: empty when it had none, or after `finish`
        (not the faces of the last frame that had any)."""
        return list(self._current)

    def observe(self, at: float, sightings: Sequence[Sighting]) -> list[Passage]:
        """Add one analysed frame (epoch seconds `at`); returns the passages that ended before it.

        The frame's faces are matched first, so that a stall of the analysis itself (no frame analysed
        for longer than the gap, e.g. a busy CPU) ends no passage whose face is still there."""
        self._current = [sighting.label for sighting in sightings]
        updated: set[int] = set()
        unmatched: list[Sighting] = []
        for sighting in sightings:
            passage = self._by_face.get(sighting.face_id) if sighting.face_id is not None else None
            if passage is not None and id(passage) not in updated:
                passage.add(at, sighting)
                updated.add(id(passage))
            else:
                unmatched.append(sighting)
        for sighting in unmatched:
            passage = self._closest(sighting.box, updated)
            if passage is None:
                passage = _Open(start=at, last_seen=at, box=sighting.box)
                self._open.append(passage)
            passage.add(at, sighting)
            updated.add(id(passage))
            if sighting.face_id is not None:
                self._by_face[sighting.face_id] = passage
        return self._end_before(at - self.rule.gap)

    def finish(self) -> list[Passage]:
        """End every passage (the stream closed)."""
        self._current = []
        return self._end_before(float("inf"))

    def _closest(self, box: tuple[int, int, int, int], taken: set[int]) -> _Open | None:
        best, best_overlap = None, MATCH_IOU
        for passage in self._open:
            if id(passage) in taken:
                continue
            overlap = iou(box, passage.box)
            if overlap > best_overlap:
                best, best_overlap = passage, overlap
        return best

    def _end_before(self, cutoff: float) -> list[Passage]:
        ended = [passage for passage in self._open if passage.last_seen < cutoff]
        if not ended:
            return []
        self._open = [passage for passage in self._open if passage.last_seen >= cutoff]
        gone = {id(passage) for passage in ended}
        self._by_face = {face_id: p for face_id, p in self._by_face.items() if id(p) not in gone}
        finished = []
        for passage in ended:
            if len(passage.labels) < self.rule.min_frames:
                self.blinks += 1
                continue
            label, confidence, changed = verdict(passage.labels, self.rule.confirm_frames)
            heights = sorted(passage.heights)
            finished.append(
                Passage(
                    start=passage.start,
                    seconds=passage.last_seen - passage.start,
                    label=label,
                    confidence=confidence,
                    frames=len(passage.labels),
                    size=size_class(heights[len(heights) // 2]),
                    label_changed=changed,
                )
            )
        return sorted(finished, key=lambda p: p.start)
