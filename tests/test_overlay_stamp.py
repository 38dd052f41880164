"""The overlay stamp draws exactly what draw_on_yuv420p draws, on every frame an analysis is shown on."""

from __future__ import annotations

import av
import numpy as np

from server.overlay import draw_on_yuv420p
from server.track import OverlayStamp, scale_detections
from server.worker import AnalysisResult
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
    assert stamp.indices.size > 0
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
    assert stamp.indices.size == 0
    assert np.array_equal(stamp.apply(frame).to_ndarray(), frame.to_ndarray())
