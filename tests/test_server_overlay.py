"""Drawing into yuv420p planes: the same picture as drawing through BGR, the rest of the frame untouched."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from server.rtc.overlay import annotate_frame, can_draw_in_place
from tests.overlay_reference import draw_on_yuv420p
from vision.labels import LABEL_COLOURS_BGR
from vision.pipeline import Detection

DETECTIONS = [
    Detection(box=(81, 126, 234, 349), label="with_mask", score=0.97, face_confidence=0.99),
    Detection(box=(428, 170, 534, 320), label="without_mask", score=0.91, face_confidence=0.99),
    Detection(box=(0, 0, 60, 50), label="mask_worn_incorrectly", score=0.6, face_confidence=0.9),
]


def camera_frame(width: int = 640, height: int = 480) -> av.VideoFrame:
    """A textured frame (gradients and noise), as yuv420p like a decoded camera frame."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    smooth = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2) * 0.6 + 40
    image: np.ndarray = (smooth + rng.normal(0, 6, smooth.shape)).clip(0, 255).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    frame.pts = 123456
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    return VideoReformatter().reformat(frame, format="bgr24").to_ndarray().astype(np.int16)


def test_outlines_have_the_label_colours_and_timestamps_are_kept() -> None:
    frame = camera_frame()
    annotated = draw_on_yuv420p(frame, DETECTIONS)
    assert (annotated.format.name, annotated.width, annotated.height) == ("yuv420p", 640, 480)
    assert (annotated.pts, annotated.time_base) == (frame.pts, frame.time_base)
    image = to_bgr(annotated)
    for detection in DETECTIONS:
        x0, y0, x1, y1 = detection.box
        colour = np.array(LABEL_COLOURS_BGR[detection.label])
        # Every column of the 3-pixel outline, at even and odd x (one chroma sample spans two columns).
        for x in (x0, x0 + 1, x1 - 1, x1, x1 + 1):
            column = image[y0 + 10 : y1 - 10, x]
            assert np.abs(np.median(column, axis=0) - colour).max() < 40, (detection.label, x)


def test_pixels_away_from_the_annotation_are_bit_identical() -> None:
    frame = camera_frame()
    before = frame.to_ndarray()
    after = draw_on_yuv420p(frame, DETECTIONS).to_ndarray()
    luma_before, luma_after = before[:480], after[:480]
    # Inside the first face box (well away from its outline and label) nothing changes.
    assert np.array_equal(luma_before[140:330, 95:220], luma_after[140:330, 95:220])
    assert np.array_equal(luma_before[380:480, 250:640], luma_after[380:480, 250:640])
    changed = np.count_nonzero(luma_before != luma_after)
    assert 2_000 < changed < 30_000, changed
    assert np.array_equal(frame.to_ndarray(), before), "the source frame was modified"


def test_same_picture_as_drawing_through_bgr() -> None:
    frame = camera_frame()
    reformatter = VideoReformatter()
    through_bgr = to_bgr(
        annotate_frame(frame, DETECTIONS, (640, 480), reformatter).reformat(format="yuv420p")
    )
    in_place = to_bgr(draw_on_yuv420p(frame, DETECTIONS))
    difference = np.abs(through_bgr - in_place).max(axis=2)
    # Both pass through 4:2:0 chroma once; they differ only along the edges of lines and letters.
    assert np.median(difference) <= 2
    assert np.mean(difference > 40) < 0.02


def test_no_detections_leaves_the_picture_unchanged() -> None:
    frame = camera_frame()
    assert np.array_equal(draw_on_yuv420p(frame, []).to_ndarray(), frame.to_ndarray())


@pytest.mark.parametrize(
    ("width", "height", "fmt"), [(641, 480, "yuv420p"), (640, 481, "yuv420p"), (640, 480, "rgb24")]
)
def test_other_layouts_are_refused(width: int, height: int, fmt: str) -> None:
    frame = av.VideoFrame(width, height, fmt)
    assert not can_draw_in_place(frame)
    with pytest.raises(ValueError):
        draw_on_yuv420p(frame, DETECTIONS)


@pytest.mark.parametrize(("width", "height"), [(2, 2), (6, 2), (640, 362), (480, 640)])
def test_sizes_whose_chroma_planes_split_rows(width: int, height: int) -> None:
    frame = camera_frame(width, height)
    box = Detection(box=(0, 0, width // 2, height // 2), label="without_mask", score=0.9, face_confidence=0.9)
    annotated = draw_on_yuv420p(frame, [box])
    assert (annotated.width, annotated.height) == (width, height)
    assert to_bgr(annotated)[0, 0, 2] > 150, "the red outline is not at the corner"
