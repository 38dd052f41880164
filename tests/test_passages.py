"""The passage rule on scripted sequences of followed faces (no video, no database)."""

from __future__ import annotations

import pytest

from vision.passages import Passage, PassageRule, PassageTracker, Sighting, size_class, verdict

FPS = 10.0
LEFT = (100, 100, 200, 220)
RIGHT = (400, 100, 500, 220)


def run(
    frames: list[list[Sighting]], rule: PassageRule | None = None, start: float = 1000.0
) -> list[Passage]:
    """Feed one list of sightings per analysed frame at FPS, then end the stream."""
    tracker = PassageTracker(rule)
    passages: list[Passage] = []
    for index, sightings in enumerate(frames):
        passages += tracker.observe(start + index / FPS, sightings)
    return passages + tracker.finish()


def face(
    label: str = "with_mask", face_id: int | None = 1, box: tuple[int, int, int, int] = LEFT
) -> Sighting:
    return Sighting(face_id=face_id, label=label, box=box)


def test_one_person_standing_for_a_minute_is_one_passage() -> None:
    passages = run([[face()] for _ in range(int(60 * FPS))])
    assert len(passages) == 1
    (passage,) = passages
    assert passage.label == "with_mask" and passage.confidence == 1.0 and not passage.label_changed
    assert passage.start == 1000.0
    assert passage.seconds == pytest.approx(59.9)
    assert passage.frames == 600 and passage.size == "medium"


def test_a_standing_person_whose_face_id_changes_is_still_one_passage() -> None:
    # The analyser drops a followed face when one full detection misses it and gives it a new id when
    # found again: within the gap and at the same place, that is the same person.
    frames = [[face(face_id=1)] for _ in range(20)] + [[]] * 3 + [[face(face_id=2)] for _ in range(20)]
    assert len(run(frames)) == 1


def test_faces_without_face_ids_are_matched_by_position() -> None:
    frames = [[face(face_id=None, box=(100 + i, 100, 200 + i, 220))] for i in range(30)]
    (passage,) = run(frames)
    assert passage.frames == 30


def test_two_people_side_by_side_are_two_passages() -> None:
    frames = [[face("with_mask", 1, LEFT), face("without_mask", 2, RIGHT)] for _ in range(30)]
    passages = run(frames)
    assert sorted(p.label for p in passages) == ["with_mask", "without_mask"]


def test_two_overlapping_faces_without_ids_stay_apart() -> None:
    near = (150, 100, 250, 220)  # overlaps LEFT (IoU 0.33), yet both are in the same frame
    frames = [[face(face_id=None, box=LEFT), face(face_id=None, box=near)] for _ in range(10)]
    assert len(run(frames)) == 2


def test_leaving_and_coming_back_after_the_gap_is_two_passages() -> None:
    away = int(1.5 * FPS)
    frames = [[face()] for _ in range(20)] + [[]] * away + [[face()] for _ in range(20)]
    passages = run(frames)
    assert len(passages) == 2
    assert passages[1].start - passages[0].start == pytest.approx((20 + away) / FPS)


def test_coming_back_within_the_gap_is_one_passage() -> None:
    frames = [[face()] for _ in range(20)] + [[]] * int(0.8 * FPS) + [[face()] for _ in range(20)]
    assert len(run(frames)) == 1


def test_a_passage_ends_after_the_gap_without_waiting_for_the_stream_to_end() -> None:
    tracker = PassageTracker(PassageRule(gap=1.0))
    for index in range(10):
        assert tracker.observe(index / FPS, [face()]) == []
    assert tracker.observe(1.85, []) == []
    (passage,) = tracker.observe(1.95, [])
    assert passage.frames == 10
    assert tracker.finish() == []


def test_an_analysis_stall_longer_than_the_gap_does_not_split_a_passage() -> None:
    # A busy CPU: no frame analysed for 1.5 s, and the face is still there in the next one.
    tracker = PassageTracker(PassageRule(gap=1.0))
    for index in range(10):
        tracker.observe(index / FPS, [face(face_id=1)])
    assert tracker.observe(2.4, [face(face_id=2)]) == []
    (passage,) = tracker.finish()
    assert passage.frames == 11


def test_putting_the_mask_on_is_one_passage_with_the_majority_label() -> None:
    frames = [[face("without_mask")] for _ in range(10)] + [[face("with_mask")] for _ in range(30)]
    (passage,) = run(frames)
    assert passage.label == "with_mask"
    assert passage.confidence == pytest.approx(0.75)
    assert passage.label_changed


def test_a_one_frame_flicker_neither_votes_nor_counts_as_a_change() -> None:
    labels = ["with_mask"] * 10 + ["without_mask"] + ["with_mask"] * 10
    (passage,) = run([[face(label)] for label in labels])
    assert passage.label == "with_mask" and passage.confidence == 1.0
    assert not passage.label_changed


def test_a_detector_blink_is_no_person() -> None:
    tracker = PassageTracker(PassageRule(min_frames=3))
    tracker.observe(0.0, [face(face_id=7)])
    tracker.observe(0.1, [face(face_id=7)])
    assert tracker.finish() == []
    assert tracker.blinks == 1


def test_verdict_without_any_confirmed_run_uses_every_frame() -> None:
    label, confidence, changed = verdict(["a", "b", "a"], confirm_frames=2)
    assert (label, changed) == ("a", False)
    assert confidence == pytest.approx(2 / 3)


def test_verdict_ties_go_to_the_label_seen_first() -> None:
    assert verdict(["b", "b", "a", "a"], confirm_frames=2)[:2] == ("b", 0.5)


def test_size_classes() -> None:
    assert [size_class(h) for h in (30, 63, 64, 159, 160, 400)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]


def test_current_labels_are_those_of_the_newest_frame_even_when_it_has_none() -> None:
    tracker = PassageTracker()
    tracker.observe(0.0, [face("with_mask", 1, LEFT), face("without_mask", 2, RIGHT)])
    tracker.observe(0.1, [face("with_mask", 1, LEFT)])
    assert tracker.current == ["with_mask"]
    # A frame with nobody: nobody is in front of the camera now, though the passage is still open.
    tracker.observe(0.2, [])
    assert tracker.current == []
    tracker.observe(0.3, [face("without_mask", 1, LEFT), face("with_mask", 3, RIGHT)])
    assert sorted(tracker.current) == ["with_mask", "without_mask"]
    tracker.finish()
    assert tracker.current == []


def test_a_passage_holds_no_box() -> None:
    (passage,) = run([[face()] for _ in range(5)])
    assert not any(isinstance(value, tuple) for value in vars(passage).values())


@pytest.mark.parametrize("rule", [{"gap": 0}, {"min_frames": 0}, {"confirm_frames": 0}])
def test_bad_rules_are_refused(rule: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PassageRule(**rule)  # type: ignore[arg-type]
