"""Behaviour of the per-stream analyser: boxes follow moving faces, new faces appear, labels refresh.

The frames are real face photos (from ../shared/data, skipped without it) pasted onto a plain
background, so the true face position is known in every frame. The real res10 detector runs; the
classifier is a recording stand-in, so the tests see exactly when and what was classified.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pytest

from vision.crops import Box
from vision.detector import FaceDetector
from vision.detector_factory import DETECTOR_NAMES, DetectorSpec, build_detector, build_region_detector
from vision.labels import LABELS
from vision.stream import FollowedDetection, StreamAnalyser, StreamSettings

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FACES_DIR = DATA_DIR / "faces"
FACE_SIDE = 150

pytestmark = pytest.mark.skipif(
    not (FACES_DIR / "splits.csv").is_file(), reason=f"face photos not found in {FACES_DIR}"
)


class RecordingClassifier:
    """Says with_mask for every face and remembers which boxes it was asked about, frame by frame."""

    labels: tuple[str, ...] = LABELS

    def __init__(self) -> None:
        self.calls: list[list[Box]] = []

    def predict_boxes(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        self.calls.append(list(boxes))
        probabilities = np.zeros((len(boxes), len(LABELS)), np.float32)
        probabilities[:, 0] = 1.0
        return probabilities


@pytest.fixture(scope="module", params=DETECTOR_NAMES)
def detector_name(request: pytest.FixtureRequest) -> str:
    """Every test runs with each detector of `vision.detector_factory`."""
    return str(request.param)


@pytest.fixture(scope="module")
def detector(detector_name: str) -> FaceDetector:
    return build_detector(DetectorSpec(detector_name))


@pytest.fixture(scope="module")
def region_detector(detector_name: str) -> FaceDetector:
    return build_region_detector(DetectorSpec(detector_name))


# A confidence that each detector gives only to faces it is sure of (YuNet's top scores are ~0.93).
SURE = {"res10": 0.95, "yunet": 0.85}


@pytest.fixture(scope="module")
def faces(detector: FaceDetector) -> list[np.ndarray]:
    """Test-split face photos (both classes) that the detector finds surely when pasted alone."""
    with (FACES_DIR / "splits.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    chosen: list[np.ndarray] = []
    for label in ("with_mask", "without_mask"):
        for row in (r for r in rows if r["label"] == label):
            image = cv2.imread(str(FACES_DIR / row["path"]))
            if image is None:
                continue
            face = cv2.resize(image, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
            found = detector.detect(scene([(face, 200, 150)]))
            if len(found) == 1 and found[0].confidence >= SURE[detector.name]:
                chosen.append(face)
            if len(chosen) in (3, 6):
                break
    assert len(chosen) == 6, "expected 3 clearly detectable test faces of each class"
    return chosen


def scene(placed: Sequence[tuple[np.ndarray, int, int]], size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A grey frame with each face photo pasted at its (x, y) top-left corner."""
    frame = np.full((size[1], size[0], 3), 110, np.uint8)
    for face, x, y in placed:
        frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


def centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def make_analyser(
    detector: FaceDetector, region_detector: FaceDetector, settings: StreamSettings | None = None
) -> tuple[StreamAnalyser, RecordingClassifier]:
    classifier = RecordingClassifier()
    # A clock that stands still: full detections by count alone, however slowly the machine runs these
    # frames (tests/test_stream_schedule.py tests the schedule by time).
    analyser = StreamAnalyser(
        detector, classifier, settings, region_detector=region_detector, clock=lambda: 0.0
    )
    return analyser, classifier


@pytest.mark.parametrize("follow", ["flow", "region"])
def test_box_follows_a_moving_face(
    detector: FaceDetector,
    region_detector: FaceDetector,
    faces: list[np.ndarray],
    follow: Literal["flow", "region"],
) -> None:
    analyser, _ = make_analyser(detector, region_detector, StreamSettings(follow=follow))
    frames = 40
    for i in range(frames):
        # 8 px per frame to the right and a vertical swing: a box left where the face was is 40 px off
        # after one detection interval.
        x, y = 60 + 8 * i, 150 + round(40 * np.sin(i / 4.0))
        detections = analyser.analyse(scene([(faces[0], x, y)]))
        assert len(detections) == 1, f"frame {i}: expected one face, got {detections}"
        cx, cy = centre(detections[0].box)
        true_cx, true_cy = x + FACE_SIDE / 2, y + FACE_SIDE / 2
        assert abs(cx - true_cx) <= 20 and abs(cy - true_cy) <= 20, f"frame {i}: box off the face"
    assert analyser.full_detections <= frames // analyser.settings.detect_every + 1
    if follow == "flow":
        assert analyser.flow_follows > frames // 2, "the optical flow should have moved most boxes"


def test_new_face_is_found_within_one_detection_interval(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    settings = StreamSettings(detect_every=5)
    analyser, _ = make_analyser(detector, region_detector, settings)
    for _ in range(7):
        assert len(analyser.analyse(scene([(faces[0], 40, 150)]))) == 1
    two_faces = scene([(faces[0], 40, 150), (faces[3], 420, 120)])
    found_after = None
    for k in range(1, settings.detect_every + 1):
        detections = analyser.analyse(two_faces)
        if any(centre(d.box)[0] > 400 for d in detections):
            found_after = k
            break
    assert found_after is not None, f"the new face was not found within {settings.detect_every} frames"
    assert len(analyser.analyse(two_faces)) == 2


def test_unchanged_face_is_reclassified_at_least_every_m_frames_but_not_every_frame(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    settings = StreamSettings(classify_every=4)
    analyser, classifier = make_analyser(detector, region_detector, settings)
    frames = 30
    classified_at = []
    for i in range(frames):
        before = len(classifier.calls)
        analyser.analyse(scene([(faces[1], 250, 160)]))
        if len(classifier.calls) > before:
            classified_at.append(i)
    assert classified_at[0] == 0
    gaps = np.diff([*classified_at, frames])
    assert gaps.max() <= settings.classify_every
    assert len(classified_at) < frames


def test_face_that_leaves_is_dropped(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    settings = StreamSettings(detect_every=10, max_misses=1)
    analyser, _ = make_analyser(detector, region_detector, settings)
    for _ in range(3):
        analyser.analyse(scene([(faces[2], 250, 160)]))
    assert analyser.analyse(scene([])) == []


def test_resolution_change_starts_afresh(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    analyser, _ = make_analyser(detector, region_detector)
    for _ in range(3):
        analyser.analyse(scene([(faces[0], 400, 250)]))
    small_face = cv2.resize(faces[0], (100, 100))
    detections = analyser.analyse(scene([(small_face, 40, 60)], size=(320, 240)))
    assert len(detections) == 1
    x0, y0, x1, y1 = detections[0].box
    assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
    assert abs(centre(detections[0].box)[0] - 90) <= 15


def test_many_faces_get_a_full_detection_every_frame(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    settings = StreamSettings(max_followed=3)
    analyser, _ = make_analyser(detector, region_detector, settings)
    crowd = scene([(faces[i], 20 + (i % 3) * 210, 20 + (i // 3) * 250) for i in range(6)])
    for _ in range(6):
        detections = analyser.analyse(crowd)
    assert len(detections) == 6
    assert analyser.full_detections == 6


def test_odd_frames_between_faces_give_boxes_inside_the_frame(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    analyser, _ = make_analyser(detector, region_detector)
    face_frame = scene([(faces[0], 250, 160)])
    odd_frames = [
        np.zeros((480, 640, 3), np.uint8),
        np.zeros((2, 2, 3), np.uint8),
        np.zeros((1, 1), np.uint8),
        cv2.cvtColor(face_frame, cv2.COLOR_BGR2GRAY),
        cv2.cvtColor(cv2.resize(face_frame, (321, 239)), cv2.COLOR_BGR2BGRA),
        cv2.resize(face_frame, (240, 320)),
    ]
    for odd in odd_frames:
        for frame in (face_frame, odd, odd):
            height, width = frame.shape[:2]
            for detection in analyser.analyse(frame):
                x0, y0, x1, y1 = detection.box
                assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert len(analyser.analyse(face_frame)) == 1


def textured_background(size: tuple[int, int] = (640, 480), seed: int = 7) -> np.ndarray:
    """Smoothed noise: corners everywhere, so the optical flow can hold on to the background itself
    (a plain background hides the ghost-box failure: there the flow fails at once)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return cv2.resize(noise, size, interpolation=cv2.INTER_CUBIC)


def on_background(background: np.ndarray, placed: Sequence[tuple[np.ndarray, int, int]]) -> np.ndarray:
    frame = background.copy()
    for face, x, y in placed:
        frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


@pytest.mark.parametrize("exit_path", ["vanishes", "walks_out", "fades"])
def test_no_ghost_box_when_the_face_leaves(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray], exit_path: str
) -> None:
    # Issue 10: a box left on the background with the previous person's label. With full detections
    # only every 10th frame, the box must still go within 3 analysed frames of the face leaving.
    settings = StreamSettings(detect_every=12)
    analyser, _ = make_analyser(detector, region_detector, settings)
    background = textured_background()
    for i in range(4):
        detections = analyser.analyse(on_background(background, [(faces[0], 250 + 2 * i, 160)]))
        assert len(detections) == 1, f"frame {i}: the face should be followed"
    frames = [background] * 3
    if exit_path == "fades":
        # Dissolves into the background over 4 frames: small changes per frame, which the optical flow
        # follows onto the background's own texture unless the box is checked against the face.
        face_frame = on_background(background, [(faces[0], 256, 160)])
        frames = [
            cv2.addWeighted(face_frame, alpha, background, 1.0 - alpha, 0.0) for alpha in (0.75, 0.5, 0.25)
        ] + frames
    if exit_path == "walks_out":
        # 70 px per frame to the left, out of the picture on the 4th frame, then background.
        frames = [
            on_background(background, [(faces[0][:, max(0, -x) :], max(0, x), 160)])
            for x in (190, 120, 50, -20)
        ] + frames
    history = [(len(analyser.analyse(frame)), analyser.full_detections) for frame in frames]
    after_exit = history[-3:]  # the frames of background alone
    first_empty = next((i for i, (count, _) in enumerate(after_exit) if count == 0), None)
    assert first_empty is not None, f"a box stayed on the background: {history}"
    assert all(count == 0 for count, _ in after_exit[first_empty:]), history
    if exit_path != "walks_out":
        # Gone by the stream analyser's own check, not by a periodic full detection.
        assert next(full for count, full in history if count == 0) == 1, history


def test_a_new_face_where_the_last_one_left_is_classified_anew(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    # The kiosk: one person steps away and the next steps into the same place; the box must not keep
    # the previous person's label until the periodic re-classification.
    settings = StreamSettings(detect_every=10, classify_every=8)
    analyser, classifier = make_analyser(detector, region_detector, settings)
    background = textured_background()
    for _ in range(3):
        analyser.analyse(on_background(background, [(faces[0], 250, 160)]))
    calls_before = len(classifier.calls)
    detections = analyser.analyse(on_background(background, [(faces[4], 250, 160)]))
    assert len(classifier.calls) > calls_before, "the new face was not classified on its first frame"
    assert len(detections) == 1


def test_a_followed_face_keeps_its_track_id(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    analyser, _ = make_analyser(detector, region_detector)
    ids: set[int] = set()
    for i in range(24):  # three detection intervals: full detections re-find the face and keep its track
        (detection,) = analyser.analyse(scene([(faces[0], 60 + 4 * i, 150)]))
        assert isinstance(detection, FollowedDetection)
        ids.add(detection.face_id)
    assert len(ids) == 1
    both = [analyser.analyse(scene([(faces[0], 156, 150), (faces[3], 420, 120)])) for _ in range(8)][-1]
    assert len({d.face_id for d in both if isinstance(d, FollowedDetection)}) == 2
    assert ids <= {d.face_id for d in both if isinstance(d, FollowedDetection)}
    assert "track" not in both[0].to_json(), "the wire format is unchanged"


def test_a_face_that_moved_far_between_two_full_detections_stays_the_same_face(
    detector: FaceDetector, region_detector: FaceDetector, faces: list[np.ndarray]
) -> None:
    """With many cameras each frame of a camera is a full detection and frames are far apart: a person
    who walked 110 px (the photo is 150 px, the face in it about 90: no overlap with the old box) keeps
    the face id and class, not classified again; another person who appears as far away is new."""
    settings = StreamSettings(detect_every=1)
    analyser, classifier = make_analyser(detector, region_detector, settings)
    first = analyser.analyse(scene([(faces[0], 100, 150)]))
    moved = analyser.analyse(scene([(faces[0], 210, 160)]))
    assert len(first) == len(moved) == 1
    assert moved[0].face_id == first[0].face_id
    assert len(classifier.calls) == 1, "the moved face was classified again"
    other = analyser.analyse(scene([(faces[3], 320, 150)]))
    assert len(other) == 1 and other[0].face_id != first[0].face_id
    assert len(classifier.calls) == 2

    by_overlap_only, classifier = make_analyser(
        detector, region_detector, StreamSettings(detect_every=1, match_distance=0.0)
    )
    ids = {by_overlap_only.analyse(scene([(faces[0], x, 150)]))[0].face_id for x in (100, 210)}
    assert len(ids) == 2 and len(classifier.calls) == 2
