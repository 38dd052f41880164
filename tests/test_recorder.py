"""`--record DIR`: annotated MP4 segments + detections JSONL, written off the caller's thread."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from scripts.cycle_test import wait_healthy
from server.app import STATE, create_app
from server.rtc import recorder as recorder_module
from server.rtc.recorder import SessionRecorder, pick_video_codec, safe_file_stem
from server.settings import ServerConfig
from tests.media_helpers import CameraClient, FakeCameraTrack, SlowAnalyser, blank_frame, serve_app


def _frame(width: int, height: int, value: int = 0) -> np.ndarray:
    """A grey frame with a pure green block in its top-left quarter (BGR)."""
    frame = np.full((height, width, 3), value, np.uint8)
    frame[: max(1, height // 2), : max(1, width // 2)] = (0, 255, 0)
    return frame


def _message(frame_number: int, width: int, height: int) -> dict[str, Any]:
    return {
        "type": "detections",
        "frame": frame_number,
        "width": width,
        "height": height,
        "faces": [{"box": [1, 2, 3, 4], "label": "with_mask", "score": 0.9}],
    }


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_annotated_video_and_messages(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "k3J9x2aQ")
    for index in range(12):
        recorder.add(_frame(640, 480, 128), _message(index, 640, 480))
        time.sleep(0.005)
    recorder.close()

    assert recorder.error is None
    assert recorder.frames_dropped == 0
    assert recorder.frames_written == 12
    assert len(recorder.segments) == 1
    frames = _decode(recorder.segments[0])
    assert len(frames) == 12
    assert frames[0].shape == (480, 640, 3)
    green_block = frames[-1][20:200, 20:280].mean(axis=(0, 1))
    grey_area = frames[-1][300:460, 400:620].mean(axis=(0, 1))
    assert green_block[1] > 200 and green_block[0] < 60 and green_block[2] < 60
    assert np.allclose(grey_area, 128, atol=10)

    lines = _jsonl(recorder.jsonl_path)
    assert [line["message"]["frame"] for line in lines] == list(range(12))
    assert {line["segment"] for line in lines} == {recorder.segments[0].name}
    assert [line["segment_frame"] for line in lines] == list(range(12))
    assert lines[0]["message"]["faces"][0]["label"] == "with_mask"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [recorder.jsonl_path.name, recorder.segments[0].name]
    )


def test_resolution_changes_start_new_segments(tmp_path: Path) -> None:
    sizes = [(640, 480), (1280, 720), (320, 240), (480, 640)]
    recorder = SessionRecorder(tmp_path, "resize")
    for width, height in sizes:
        for index in range(3):
            recorder.add(_frame(width, height), _message(index, width, height))
    recorder.close()

    assert recorder.error is None
    assert len(recorder.segments) == len(sizes)
    for path, (width, height) in zip(recorder.segments, sizes, strict=True):
        frames = _decode(path)
        assert len(frames) == 3
        assert frames[0].shape == (height, width, 3)
    segments_in_log = [line["segment"] for line in _jsonl(recorder.jsonl_path)]
    assert segments_in_log == [path.name for path in recorder.segments for _ in range(3)]


@pytest.mark.parametrize(("width", "height"), [(2, 2), (3, 5), (641, 479), (1, 1)])
def test_tiny_and_odd_sizes_are_padded_to_even(tmp_path: Path, width: int, height: int) -> None:
    recorder = SessionRecorder(tmp_path, "odd")
    for index in range(3):
        recorder.add(_frame(width, height, 200), _message(index, width, height))
    recorder.close()
    assert recorder.error is None
    frames = _decode(recorder.segments[0])
    assert len(frames) == 3
    assert frames[0].shape == (height + height % 2, width + width % 2, 3)


def test_grey_and_bgra_frames_are_accepted_and_empty_ones_skipped(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "formats")
    recorder.add(np.full((48, 64), 90, np.uint8), _message(0, 64, 48))
    recorder.add(np.full((48, 64, 4), 90, np.uint8), _message(1, 64, 48))
    recorder.add(np.zeros((0, 64, 3), np.uint8), _message(2, 64, 0))
    recorder.close()
    assert recorder.error is None
    assert recorder.frames_written == 2
    assert recorder.frames_dropped == 1
    assert len(_decode(recorder.segments[0])) == 2


def test_add_never_blocks_and_counts_dropped_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    original_write = SessionRecorder._write

    def stalled_write(self: SessionRecorder, item: Any, jsonl: Any) -> None:
        release.wait(10)
        original_write(self, item, jsonl)

    monkeypatch.setattr(SessionRecorder, "_write", stalled_write)
    recorder = SessionRecorder(tmp_path, "slow-disk", max_queue=4)
    frame = _frame(640, 480)
    started = time.perf_counter()
    for index in range(60):
        recorder.add(frame, _message(index, 640, 480))
    elapsed = time.perf_counter() - started
    release.set()
    recorder.close()

    assert elapsed < 0.5, f"60 add() calls took {elapsed:.3f} s while the writer was stalled"
    # A full queue of 4, plus the item the stalled writer holds if it woke before the queue filled.
    assert recorder.frames_written in (4, 5)
    assert recorder.frames_dropped == 60 - recorder.frames_written
    assert len(_jsonl(recorder.jsonl_path)) == recorder.frames_written


def test_frame_is_copied_so_the_caller_may_reuse_its_buffer(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "reuse")
    frame = _frame(64, 48, 128)
    recorder.add(frame, _message(0, 64, 48))
    frame[:] = 0
    recorder.close()
    decoded = _decode(recorder.segments[0])[0]
    assert decoded[30:, 40:].mean() > 100


def test_close_is_idempotent_and_add_after_close_is_dropped(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "closing")
    recorder.add(_frame(64, 48), _message(0, 64, 48))
    recorder.close()
    recorder.close()
    recorder.add(_frame(64, 48), _message(1, 64, 48))
    assert recorder.frames_written == 1
    assert recorder.frames_dropped == 1
    assert not recorder._thread.is_alive()


def test_close_without_frames_leaves_only_an_empty_log(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "idle")
    recorder.close()
    assert recorder.segments == []
    assert recorder.jsonl_path.read_text() == ""


def test_long_sessions_rotate_segments(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "kiosk", segment_seconds=0.05)
    for index in range(4):
        recorder.add(_frame(64, 48), _message(index, 64, 48))
        time.sleep(0.06)
    recorder.close()
    assert len(recorder.segments) == 4
    assert all(len(_decode(path)) == 1 for path in recorder.segments)


def test_frame_times_follow_the_wall_clock(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, "timing")
    for index in range(3):
        recorder.add(_frame(64, 48), _message(index, 64, 48))
        time.sleep(0.2)
    recorder.close()
    with av.open(str(recorder.segments[0])) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    gaps = np.diff(times)
    assert len(times) == 3
    assert np.all((gaps > 0.15) & (gaps < 0.4)), times


def test_encoder_failure_stops_recording_but_not_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_encode(self: Any, frame: np.ndarray, monotonic: float) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(recorder_module._Segment, "encode", broken_encode)
    recorder = SessionRecorder(tmp_path, "full-disk", max_queue=2)
    for index in range(50):
        recorder.add(_frame(64, 48), _message(index, 64, 48))
        time.sleep(0.001)
    recorder.close()
    assert recorder.error is not None
    assert "No space left" in recorder.error
    assert recorder.frames_written == 0
    assert not recorder._thread.is_alive()


def test_session_id_cannot_escape_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "recordings"
    recorder = SessionRecorder(target, "../../etc/passwd")
    recorder.add(_frame(64, 48), _message(0, 64, 48))
    recorder.close()
    assert [path.parent for path in [recorder.jsonl_path, *recorder.segments]] == [target, target]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recordings"]
    assert safe_file_stem("") == "session"
    assert safe_file_stem("a/b\\c..d") == "a_b_c__d"


def test_a_codec_is_available() -> None:
    assert pick_video_codec() in ("libx264", "h264", "mpeg4")


# --- the real app with and without --record ----------------------------------------------------------


async def _one_camera_session(config: ServerConfig) -> CameraClient:
    app = create_app(config, source_factory=lambda _: SlowAnalyser(0.005))
    async with serve_app(app) as base_url, aiohttp.ClientSession() as http:
        await wait_healthy(http, base_url)
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await client.connect(http, base_url)
            await client.wait_for(lambda: len(client.messages) >= 5, 20.0, "5 detection messages")
        finally:
            await client.close()
        await client.wait_for(lambda: len(app[STATE].registry) == 0, 20.0, "the session to close")
    return client


async def test_record_flag_writes_the_sessions_video_and_messages(tmp_path: Path) -> None:
    config = replace(ServerConfig(), offers_per_minute=0, record=tmp_path / "recordings")
    client = await _one_camera_session(config)
    [jsonl] = (tmp_path / "recordings").glob("*.jsonl")
    [video] = (tmp_path / "recordings").glob("*.mp4")
    assert client.session_id is not None and client.session_id in jsonl.name
    lines = _jsonl(jsonl)
    assert len(lines) >= 5
    assert {line["message"]["session"] for line in lines} == {client.session_id}
    assert {line["segment"] for line in lines} == {video.name}
    frames = _decode(video)
    assert len(frames) == len(lines)
    assert frames[0].shape == (480, 640, 3)


async def test_without_record_flag_no_recorder_is_ever_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a SessionRecorder was created without --record")

    monkeypatch.setattr(recorder_module.SessionRecorder, "__init__", refuse)
    client = await _one_camera_session(replace(ServerConfig(), offers_per_minute=0))
    assert len(client.messages) >= 5
