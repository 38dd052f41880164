"""Analysis of one video stream: detect faces on some frames and follow them in between.

The full-frame face detector is the dominant cost of a frame (bench/RESULTS.md). Between two full
detections each known face's box is moved with the optical flow of corner points on the face (pyramidal
Lucas-Kanade, checked forwards and back), a small fraction of a detection's cost. Where the flow is not
reliable (too few points) the face is searched again in a square region around its last box, resampled
to a small detector input (``follow="region"`` does this for every face). A followed face keeps its
class probabilities for ``classify_every`` frames instead of being re-classified on every frame.

A full detection runs at least every ``detect_interval_s`` seconds and every ``detect_every`` analysed frames,
whichever comes first, and at once when the whole picture changed (a cut). The time bound is what keeps a
new face's wait short at every load: with many cameras each one gets few analysed frames per second, and a
count of frames alone (8 frames at 2 per second) let a face that entered wait 4 s to be found, its
neighbour's box and label followed meanwhile. A full detection is authoritative: a face that it does not find
is dropped, and it corrects the size and drift of flow-moved boxes. A crowd of more than
``max_followed`` faces gets a full detection on every frame, which bounds the cost of small faces that
the flow cannot hold and the region search must find.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import cv2
import numpy as np

from vision.boxes import clipped_box, iou
from vision.crops import Box, crop_square
from vision.detector import FaceBox, FaceDetector, usable_frame
from vision.detector_factory import DetectorSpec, build_region_detector, region_input
from vision.labels import best_label
from vision.pipeline import Detection

IntBox = tuple[int, int, int, int]


@dataclass(frozen=True)
class FollowedDetection(Detection):
    """A detection of a followed face, with the face's id: the same on every frame the analyser
    follows that face (a new id once the face was lost and found again; ids count from 0 per analyser).
    Additive: a Detection in every other respect, and not in its JSON."""

    face_id: int = -1


class FaceClassifier(Protocol):
    """What the analyser needs of a classifier (``vision.classifier.MaskClassifier`` is one)."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict_boxes(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray: ...


@dataclass(frozen=True)
class StreamSettings:
    """How often to run each stage; the defaults were measured in bench/RESULTS.md."""

    detect_every: int = 8
    """A full-frame detection on every N-th analysed frame at least (1 = every frame, no following)."""
    detect_interval_s: float | None = 0.5
    """A full-frame detection at least this often (seconds), however few frames a camera gets analysed: a
    face that enters is found within this plus one analysis. None: by ``detect_every`` alone."""
    region_scale: float = 1.6
    """Side of the search region around a face, in multiples of the face box's long side."""
    region_input: int | None = None
    """Detector input (pixels, square) for one search region; None: the detector's own
    (`vision.detector_factory.region_input`)."""
    max_followed: int = 20
    """With more faces than this, every frame gets a full detection instead of following (bounds the
    cost of a crowd whose small faces the flow cannot follow and the region search must)."""
    classify_every: int = 5
    """A face is re-classified at least every N analysed frames."""
    follow: Literal["flow", "region"] = "flow"
    """How faces are followed between full detections: ``region`` (re-detection around the last box)
    or ``flow`` (the box moved with the optical flow of points on the face; region when flow fails)."""
    max_misses: int = 1
    """A followed face not found in its region this many frames in a row is dropped."""
    min_similarity: float = 0.5
    """A box moved by the flow must still hold what the detector last saw there: the correlation of
    its small grey thumbnail with the one taken at the last detection. Below this the face is searched
    again in its region, so a box that the flow carried onto the background when the face left is
    dropped at once instead of staying there, with the old label, until the next full detection; and a
    face found in the region that does not look like the one last seen is re-classified at once."""
    match_distance: float = 1.5
    """A face of a full detection that overlaps no followed face still continues the followed face whose
    box centre is within this many of its long sides, when size and look agree (`min_similarity`):
    it keeps that face's id and class instead of being classified again as a new face."""
    scene_change: float = 30.0
    """Mean absolute difference (grey levels) of tiny frame thumbnails from one analysed frame to the
    next that counts as a new scene (camera switched or cut): it gets a full detection at once."""


@dataclass
class _FollowedFace:
    """One face followed across frames."""

    box: IntBox
    face_confidence: float
    probabilities: np.ndarray | None = None
    classified_at: int = -1
    misses: int = 0
    appearance: np.ndarray | None = None
    """Normalised grey thumbnail of the box when a detector (full frame or region) last found it."""
    face_id: int = 0
    """Stable id of the face while it is followed (`FollowedDetection.face_id`)."""


def search_region(box: IntBox, scale: float) -> Box:
    """Square region centred on ``box`` whose side is ``scale`` times the box's long side."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 8) * scale
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


class StreamAnalyser:
    """Per-stream state over a shared detector and classifier; ``analyse`` takes frames in order.

    ``region_detector`` runs the search regions: the same model as ``detector`` at the region input
    size (`vision.detector_factory.build_region_detector`). Pass one shared by all streams; left out, one is
    built here with the detector's name and threshold and the packaged model files.
    """

    def __init__(
        self,
        detector: FaceDetector,
        classifier: FaceClassifier,
        settings: StreamSettings | None = None,
        region_detector: FaceDetector | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.settings = settings or StreamSettings()
        if region_detector is None:
            spec = DetectorSpec(detector.name, confidence=detector.confidence)
            region_detector = build_region_detector(spec, self.settings.region_input)
        self.region_detector = region_detector
        self.region_input = region_input(detector.name, self.settings.region_input)
        self._followed: list[_FollowedFace] = []
        self._face_ids = itertools.count()
        self._frame_index = 0
        self._since_full = 0
        self._clock = clock
        self._last_full_at = -float("inf")
        self._frame_shape: tuple[int, int] = (0, 0)
        self._thumbnail: np.ndarray | None = None
        self._previous_grey: np.ndarray | None = None
        self.full_detections = 0
        self.flow_follows = 0
        self.classifications = 0

    def reset(self) -> None:
        """Forget every face: the next frame gets a full detection."""
        self._followed = []
        self._since_full = 0
        self._thumbnail = None
        self._previous_grey = None

    def analyse(self, image: np.ndarray) -> list[FollowedDetection]:
        frame = usable_frame(image)
        if frame is None:
            self.reset()
            return []
        height, width = frame.shape[:2]
        if (height, width) != self._frame_shape:
            # A camera that changed resolution: old boxes mean nothing in the new frame.
            self.reset()
            self._frame_shape = (height, width)
        thumbnail = _frame_thumbnail(frame)
        cut = self._thumbnail is not None and (
            float(np.mean(cv2.absdiff(thumbnail, self._thumbnail))) > self.settings.scene_change
        )
        self._thumbnail = thumbnail
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if self.settings.follow == "flow" else None
        if cut or self._needs_full_detection():
            self._full_detection(frame, grey)
        else:
            self._follow(frame, grey)
            self._since_full += 1
        self._previous_grey = grey
        self._classify(frame)
        self._frame_index += 1
        return self._detections()

    def _needs_full_detection(self) -> bool:
        interval = self.settings.detect_interval_s
        return (
            not self._followed
            or self._since_full + 1 >= self.settings.detect_every
            or (interval is not None and self._clock() - self._last_full_at >= interval)
            or len(self._followed) > self.settings.max_followed
        )

    def _full_detection(self, frame: np.ndarray, grey: np.ndarray | None) -> None:
        """Replace the followed faces by the detector's, keeping the class of those already known."""
        self._last_full_at = self._clock()
        faces = self.detector.detect(frame)
        self.full_detections += 1
        self._since_full = 0
        previous = self._followed
        pairs = sorted(
            (
                (iou(face.box, followed.box), f, t)
                for f, face in enumerate(faces)
                for t, followed in enumerate(previous)
            ),
            reverse=True,
        )
        matched: dict[int, _FollowedFace] = {}
        used_faces: set[int] = set()
        for overlap, f, t in pairs:
            if overlap < 0.3:
                break
            if f in matched or t in used_faces:
                continue
            matched[f] = previous[t]
            used_faces.add(t)
        appearances = [_appearance(frame if grey is None else grey, face.box) for face in faces]
        self._match_moved(faces, appearances, previous, matched, used_faces)
        found = []
        for f, face in enumerate(faces):
            followed = matched.get(f)
            if followed is None:
                followed = _FollowedFace(
                    box=face.box, face_confidence=face.confidence, face_id=next(self._face_ids)
                )
            else:
                followed.box, followed.face_confidence, followed.misses = face.box, face.confidence, 0
            followed.appearance = appearances[f]
            found.append(followed)
        self._followed = found

    def _match_moved(
        self,
        faces: Sequence[FaceBox],
        appearances: Sequence[np.ndarray | None],
        previous: Sequence[_FollowedFace],
        matched: dict[int, _FollowedFace],
        used: set[int],
    ) -> None:
        """Pair the faces left unpaired by overlap with followed faces that moved further: a centre within
        ``match_distance`` of the old box's long side, a similar size, and the same look.

        With many cameras a camera gets one or two analysed frames a second, each a full detection, and a
        person walking moves more than a box's overlap between two of them: by overlap alone every frame
        made every face new, re-classified (the most costly step after the detector) and given a new id."""
        limit = self.settings.match_distance
        candidates = []
        for f, face in enumerate(faces):
            if f in matched:
                continue
            for t, followed in enumerate(previous):
                if t in used:
                    continue
                distance = _centre_distance(face.box, followed.box)
                if distance <= limit and _similar_size(face.box, followed.box):
                    candidates.append((distance, f, t))
        for _, f, t in sorted(candidates):
            if f in matched or t in used:
                continue
            if similarity(previous[t].appearance, appearances[f]) < self.settings.min_similarity:
                continue
            matched[f] = previous[t]
            used.add(t)

    def _follow(self, frame: np.ndarray, grey: np.ndarray | None) -> None:
        """Move each face's box with the optical flow, or search the face again in a region around its
        last box (also when the flow moved it onto something that no longer looks like the face);
        drop faces missed too often."""
        size = self.region_input
        kept: list[_FollowedFace] = []
        for followed in self._followed:
            if grey is not None and self._previous_grey is not None:
                moved_box = flow_box(self._previous_grey, grey, followed.box)
                if moved_box is not None and (
                    similarity(followed.appearance, _appearance(grey, moved_box))
                    >= self.settings.min_similarity
                ):
                    followed.box = moved_box
                    self.flow_follows += 1
                    kept.append(followed)
                    continue
            region = search_region(followed.box, self.settings.region_scale)
            patch = crop_square(frame, region, size)
            found = self.region_detector.detect(patch)
            best = _closest(followed.box, [_to_frame(face, region, size, frame.shape) for face in found])
            if best is None:
                followed.misses += 1
                if followed.misses <= self.settings.max_misses - 1:
                    kept.append(followed)
                continue
            followed.box, followed.face_confidence = best.box, best.confidence
            appearance = _appearance(frame if grey is None else grey, best.box)
            if similarity(followed.appearance, appearance) < self.settings.min_similarity:
                # The face found here does not look like the one last seen (a new face stepping in
                # where the last one left, a turn): its class is due again now.
                followed.classified_at = -self.settings.classify_every
            followed.misses, followed.appearance = 0, appearance
            kept.append(followed)
        self._followed = _without_duplicates(kept)

    def _classify(self, frame: np.ndarray) -> None:
        """Classify, in one batch, the faces that are new or due for a refresh."""
        due = [
            followed
            for followed in self._followed
            if followed.probabilities is None
            or self._frame_index - followed.classified_at >= self.settings.classify_every
        ]
        if not due:
            return
        probabilities = self.classifier.predict_boxes(frame, [followed.box for followed in due])
        self.classifications += len(due)
        for followed, probs in zip(due, probabilities, strict=True):
            followed.probabilities = probs
            followed.classified_at = self._frame_index

    def _detections(self) -> list[FollowedDetection]:
        labels = self.classifier.labels
        detections = []
        for followed in self._followed:
            if followed.probabilities is None:
                continue
            label, score = best_label(followed.probabilities, labels)
            detections.append(
                FollowedDetection(
                    box=followed.box,
                    label=label,
                    score=score,
                    face_confidence=followed.face_confidence,
                    face_id=followed.face_id,
                )
            )
        return detections


def _to_frame(face: FaceBox, region: Box, size: int, shape: tuple[int, ...]) -> FaceBox:
    """A box found in a resampled search region, in frame pixels, clipped to the frame."""
    x0, y0, x1, _ = region
    scale = (x1 - x0) / size
    height, width = shape[:2]
    bx0, by0, bx1, by1 = face.box
    box = clipped_box(x0 + bx0 * scale, y0 + by0 * scale, x0 + bx1 * scale, y0 + by1 * scale, width, height)
    return FaceBox(box=box, confidence=face.confidence)


def _centre_distance(a: IntBox, b: IntBox) -> float:
    """Distance between the boxes' centres, in multiples of ``b``'s long side."""
    side = max(b[2] - b[0], b[3] - b[1], 1)
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2.0, (a[1] + a[3] - b[1] - b[3]) / 2.0)) / side


def _similar_size(a: IntBox, b: IntBox, ratio: float = 1.5) -> bool:
    """Whether the long sides of the two boxes differ by less than ``ratio`` times."""
    side_a, side_b = max(a[2] - a[0], a[3] - a[1], 1), max(b[2] - b[0], b[3] - b[1], 1)
    return max(side_a, side_b) / min(side_a, side_b) < ratio


def _closest(previous: IntBox, candidates: Sequence[FaceBox]) -> FaceBox | None:
    """The candidate overlapping the previous box most; None when none overlaps it at all."""
    best, best_overlap = None, 0.0
    for candidate in candidates:
        if candidate.box[2] - candidate.box[0] < 2 or candidate.box[3] - candidate.box[1] < 2:
            continue
        overlap = iou(previous, candidate.box)
        if overlap > best_overlap:
            best, best_overlap = candidate, overlap
    return best


def _without_duplicates(faces: list[_FollowedFace]) -> list[_FollowedFace]:
    """Two followed faces that converged on one face: keep the more confident one."""
    kept: list[_FollowedFace] = []
    for followed in sorted(faces, key=lambda t: -t.face_confidence):
        if all(iou(followed.box, other.box) < 0.5 for other in kept):
            kept.append(followed)
    return kept


_APPEARANCE_SIDE = 16


def _appearance(image: np.ndarray, box: IntBox) -> np.ndarray | None:
    """The box's content as a zero-mean, unit-norm 16x16 grey thumbnail; None when it is flat."""
    x0, y0, x1, y1 = box
    patch = image[y0:y1, x0:x1]
    if patch.shape[0] < 2 or patch.shape[1] < 2:
        return None
    if patch.ndim == 3:
        patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(patch, (_APPEARANCE_SIDE, _APPEARANCE_SIDE), interpolation=cv2.INTER_AREA)
    values = small.astype(np.float32).ravel()
    values -= values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 1e-3 * values.size else None


def similarity(before: np.ndarray | None, after: np.ndarray | None) -> float:
    """Correlation of two appearances in [-1, 1]; 0 when either is flat (nothing to recognise)."""
    if before is None or after is None:
        return 0.0
    return float(np.dot(before, after))


def _frame_thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 32x24 grey summary of the whole frame, to notice a cut between two analysed frames."""
    small = cv2.resize(frame, (32, 24), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)


_FLOW_MIN_POINTS = 6
_FLOW_FACE_SIDE = 96


def flow_box(previous: np.ndarray, current: np.ndarray, box: IntBox) -> IntBox | None:
    """``box`` moved with the median optical flow of corner points inside it, grey frames; None when too
    few points can be followed reliably (forwards and back to within a pixel)."""
    height, width = previous.shape
    x0, y0, x1, y1 = box
    reach = max(x1 - x0, y1 - y0) // 2
    rx0, ry0 = max(x0 - reach, 0), max(y0 - reach, 0)
    rx1, ry1 = min(x1 + reach, width), min(y1 + reach, height)
    if rx1 - rx0 < 16 or ry1 - ry0 < 16:
        return None
    before, after = previous[ry0:ry1, rx0:rx1], current[ry0:ry1, rx0:rx1]
    # Large faces are followed at reduced size: the flow's cost grows with the region, its precision
    # (in face sizes) does not need the full resolution.
    factor = min(1.0, _FLOW_FACE_SIDE / max(x1 - x0, y1 - y0))
    if factor < 1.0:
        size = (max(round((rx1 - rx0) * factor), 16), max(round((ry1 - ry0) * factor), 16))
        before = cv2.resize(before, size, interpolation=cv2.INTER_LINEAR)
        after = cv2.resize(after, size, interpolation=cv2.INTER_LINEAR)
    mask = np.zeros_like(before)
    mx0, my0 = round((x0 - rx0) * factor), round((y0 - ry0) * factor)
    mx1, my1 = round((x1 - rx0) * factor), round((y1 - ry0) * factor)
    inset_x, inset_y = (mx1 - mx0) // 8, (my1 - my0) // 8
    mask[my0 + inset_y : my1 - inset_y, mx0 + inset_x : mx1 - inset_x] = 255
    points = cv2.goodFeaturesToTrack(before, maxCorners=40, qualityLevel=0.01, minDistance=4, mask=mask)
    if points is None or len(points) < _FLOW_MIN_POINTS:
        return None
    window = (15, 15)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        before, after, points, np.empty_like(points), winSize=window, maxLevel=2
    )
    back, back_status, _ = cv2.calcOpticalFlowPyrLK(
        after, before, moved, np.empty_like(points), winSize=window, maxLevel=2
    )
    good = (status[:, 0] == 1) & (back_status[:, 0] == 1)
    good &= np.linalg.norm((back - points)[:, 0], axis=1) < 1.0
    if int(good.sum()) < _FLOW_MIN_POINTS:
        return None
    start, end = points[good, 0], moved[good, 0]
    dx, dy = np.median(end - start, axis=0) / factor
    spread_before = np.linalg.norm(start - start.mean(axis=0), axis=1)
    spread_after = np.linalg.norm(end - end.mean(axis=0), axis=1)
    scale = float(np.clip(np.median(spread_after / np.maximum(spread_before, 1e-3)), 0.8, 1.25))
    cx, cy = (x0 + x1) / 2.0 + float(dx), (y0 + y1) / 2.0 + float(dy)
    half_w, half_h = (x1 - x0) * scale / 2.0, (y1 - y0) * scale / 2.0
    moved_box = clipped_box(cx - half_w, cy - half_h, cx + half_w, cy + half_h, width, height)
    if moved_box[2] - moved_box[0] < 2 or moved_box[3] - moved_box[1] < 2:
        return None
    return moved_box
