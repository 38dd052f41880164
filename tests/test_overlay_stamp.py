"""The overlay stamp draws exactly what draw_on_yuv420p draws, on every frame an analysis is shown on, and
the two output frames it writes into in turn stay intact for a frame and never carry a forced keyframe on."""

from __future__ import annotations

import fractions

import av
import numpy as np
from av.video.frame import PictureType

from server.analysis.analyser import AnalysisResult
from server.rtc.overlay import OutputFrames, OverlayStamp, scale_detections
from tests.overlay_reference import draw_on_yuv420p
from vision.pipeline import Detection


def result_for(detections: tuple[Detection, ...], width: int, height: int) -> AnalysisResult:
    return AnalysisResult(
        number=0,
        width=width,
        height=height,
        detections=detections,
        image=np.zeros((height, width, 3), np.uint8),
        received_at=0.0,
        queue_ms=0.0,
        inference_ms=0.0,
        analysed=1,
        dropped=0,
    )


def random_frame(rng: np.random.Generator, width: int, height: int) -> av.VideoFrame:
    data = rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
    frame.pts = int(rng.integers(0, 10_000))
    return frame


def test_stamp_equals_drawing_on_each_frame() -> None:
    rng = np.random.default_rng(3)
    detections = (
        Detection(box=(100, 80, 260, 250), label="with_mask", score=0.97, face_confidence=0.99),
        Detection(box=(0, 0, 61, 47), label="without_mask", score=0.8, face_confidence=0.7),
        Detection(box=(560, 400, 640, 480), label="mask_worn_incorrectly", score=0.55, face_confidence=0.6),
    )
    # Found in a 320x240 analysis frame, drawn on 640x480 video: the stamp scales like the drawing.
    result = result_for(tuple(scale_detections(detections, (640, 480), (320, 240))), 320, 240)
    stamp = OverlayStamp.make(result, (640, 480))
    assert stamp.count > 0
    for _ in range(4):
        frame = random_frame(rng, 640, 480)
        expected = draw_on_yuv420p(
            frame, scale_detections(result.detections, (result.width, result.height), (640, 480))
        )
        stamped = stamp.apply(frame)
        assert np.array_equal(stamped.to_ndarray(), expected.to_ndarray())
        assert stamped.pts == frame.pts


def test_stamp_of_no_detections_changes_nothing() -> None:
    rng = np.random.default_rng(4)
    stamp = OverlayStamp.make(result_for((), 64, 48), (64, 48))
    frame = random_frame(rng, 64, 48)
    assert stamp.count == 0
    assert np.array_equal(stamp.apply(frame).to_ndarray(), frame.to_ndarray())


def test_output_frames_alternate_and_each_stays_intact_until_its_next_turn() -> None:
    rng = np.random.default_rng(5)
    detections = (Detection(box=(40, 30, 200, 220), label="with_mask", score=0.9, face_confidence=0.9),)
    stamp = OverlayStamp.make(result_for(detections, 320, 240), (320, 240))
    output = OutputFrames()
    inputs = [random_frame(rng, 320, 240) for _ in range(5)]
    written = []
    for index, frame in enumerate(inputs):
        written.append(stamp.apply(frame, output.take(320, 240)))
        if index:
            # The frame handed out before this one (still being encoded, at worst) was not overwritten.
            expected = draw_on_yuv420p(inputs[index - 1], detections)
            assert np.array_equal(written[index - 1].to_ndarray(), expected.to_ndarray())
            assert written[index] is not written[index - 1]
    assert written[2] is written[0] and written[3] is written[1]
    assert written[4].pts == inputs[4].pts
    # A new size gets new frames.
    assert output.take(640, 480).width == 640


def test_a_forced_keyframe_does_not_stick_to_a_reused_output_frame() -> None:
    encoder = av.CodecContext.create("libvpx", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"deadline": "realtime", "lag-in-frames": "0"}
    rng = np.random.default_rng(6)
    stamp = OverlayStamp.make(result_for((), 320, 240), (320, 240))
    output = OutputFrames()
    keyframes = []
    for index in range(8):
        frame = stamp.apply(random_frame(rng, 320, 240), output.take(320, 240))
        frame.pts = index
        if index == 3:
            frame.pict_type = PictureType.I  # what aiortc's encoder does when asked for a keyframe
        keyframes += [packet.is_keyframe for packet in encoder.encode(frame)]
    # The first frame and the forced one; frame 5, written into the same output frame, is not forced again.
    assert keyframes == [True, False, False, True, False, False, False, False]
