"""The benchmark's frame code survives VP8, its cheap I420 motion matches the BGR motion, its stream repeats
every 25 s, and the media-steps benchmark runs."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from bench import media_steps
from bench.client import SCENE_SECONDS, SCENES
from bench.frames import (
    HEIGHT,
    MOTION_PERIOD_S,
    SCENES_DIR,
    WIDTH,
    Scene,
    motion,
    moved,
    moved_i420,
    read_code,
    stamp_code_i420,
    to_i420,
)


def textured_scene() -> Scene:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    image = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return Scene(image=image, faces=(), name="made")


def vp8_round_trip(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Encode I420 frames with libvpx at a low WebRTC-like bitrate and decode them again (luma)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.bit_rate = 300_000
    encoder.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    decoder = av.CodecContext.create("libvpx", "r")
    decoded: list[np.ndarray] = []
    for index, data in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = index
        for packet in encoder.encode(frame):
            decoded.extend(f.to_ndarray(format="gray") for f in decoder.decode(packet))
    return decoded


def test_frame_code_is_read_back_after_vp8_compression() -> None:
    scene = to_i420(textured_scene().image)
    indices = [0, 1, 2, 255, 256, 4097, 65535, 65536 + 3]
    frames = []
    for i, index in enumerate(indices):
        frame = moved_i420(scene, i / 30)
        stamp_code_i420(frame, index)
        frames.append(frame)
    decoded = vp8_round_trip(frames)
    assert [read_code(luma) for luma in decoded] == [index % 65536 for index in indices[: len(decoded)]]
    assert len(decoded) >= len(indices) - 1


def test_unstamped_or_damaged_code_is_rejected() -> None:
    luma = to_i420(textured_scene().image)[:HEIGHT].copy()
    assert read_code(luma) is None
    frame = to_i420(textured_scene().image)
    stamp_code_i420(frame, 1234)
    assert read_code(frame[:HEIGHT]) == 1234
    frame[HEIGHT - 16 : HEIGHT, 0:16] = 255 - frame[HEIGHT - 16 : HEIGHT, 0:16]
    assert read_code(frame[:HEIGHT]) is None


def test_i420_motion_matches_the_bgr_motion() -> None:
    scene = textured_scene()
    i420 = to_i420(scene.image)
    inner = (slice(40, HEIGHT - 40), slice(40, WIDTH - 40))
    for t in (0.4, 1.1, 2.6):
        expected, _ = moved(scene, t)
        got = cv2.cvtColor(moved_i420(i420, t), cv2.COLOR_YUV2BGR_I420)
        unmoved = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
        error = float(np.mean(cv2.absdiff(got[inner], expected[inner])))
        # Even-pixel shifts against sub-pixel ones: far closer than the frame that did not move.
        assert error < 0.5 * float(np.mean(cv2.absdiff(unmoved[inner], expected[inner])))


def test_stream_repeats_every_25_seconds_so_growth_compares_the_same_frames() -> None:
    cycle = SCENES * SCENE_SECONDS
    assert cycle == 25.0 and (cycle / MOTION_PERIOD_S).is_integer()
    for t in (0.0, 1.3, 4.9, 7.77):
        assert np.allclose(motion(t), motion(t + cycle))


def test_media_steps_benchmark_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    if not SCENES_DIR.is_dir():
        pytest.skip(f"needs the scene photos of ../shared/data ({SCENES_DIR} not found)")
    assert media_steps.main(["--frames", "60"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| VP8") or line.startswith("| overlay")]
    assert len(rows) == 5
    assert all(float(row.split("|")[2]) > 0 for row in rows)
