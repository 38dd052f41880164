"""A real aiortc peer over loopback against the real app: annotated video back, detections on the data
channel with the right labels, and nothing left of the session after hang-up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from server.analysis.analyser import AnalyserSource
from server.analysis.models import load_models
from server.app import STATE, create_app
from server.settings import PROJECT_ROOT, ServerConfig
from tests.media_helpers import CameraClient, FakeCameraTrack, TwoFaceFrame, serve_app, two_face_frame
from vision.detector_factory import build_detector
from vision.labels import LABEL_COLOURS_BGR
from vision.pipeline import Detection

TRAINED_MODEL = PROJECT_ROOT / "models" / "mask_classifier.onnx"
CONFIG = ServerConfig(offers_per_minute=0, idle_timeout=5.0)


class DetectorOnly:
    """The real face detector with one fixed label: the plumbing without needing the trained classifier."""

    def __init__(self) -> None:
        self.detector = build_detector()

    def open_stream(self) -> DetectorOnly:
        return self

    def analyse(self, image: np.ndarray) -> list[Detection]:
        return [
            Detection(box=face.box, label="mask_worn_incorrectly", score=0.5, face_confidence=face.confidence)
            for face in self.detector.detect(image)
        ]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def inside(box: list[int], region: tuple[int, int, int, int]) -> bool:
    """The box's centre lies in the region."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def outline_colour(image: np.ndarray, box: list[int]) -> np.ndarray:
    """Median BGR colour of the box's left and right edges (where the outline is drawn)."""
    x0, y0, x1, y1 = box
    rows = slice(y0 + 10, y1 - 10)
    edges = np.concatenate([image[rows, max(x0 - 1, 0) : x0 + 2], image[rows, x1 - 1 : x1 + 2]], axis=1)
    return np.median(edges.reshape(-1, 3), axis=0)


class MemoryRecorder:
    """Stands in for SessionRecorder: keeps what the session hands it (one per session)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.frames: list[np.ndarray] = []
        self.messages: list[dict[str, Any]] = []
        self.closed = False

    def add(self, frame_bgr: np.ndarray, message: dict[str, Any]) -> None:
        self.frames.append(frame_bgr.copy())
        self.messages.append(message)

    def close(self) -> None:
        self.closed = True


async def run_session(
    http: aiohttp.ClientSession,
    analyser: AnalyserSource,
    scene: TwoFaceFrame,
    recorders: list[MemoryRecorder] | None = None,
) -> tuple[CameraClient, list[dict[str, Any]], np.ndarray, dict[str, Any]]:
    """Stream the scene for a while, hang up; return what the client got and what the server kept."""

    def record(session_id: str) -> MemoryRecorder:
        recorder = MemoryRecorder(session_id)
        assert recorders is not None
        recorders.append(recorder)
        return recorder

    app = create_app(
        CONFIG,
        source_factory=lambda _: analyser,
        recorder_factory=record if recorders is not None else None,
    )
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())
    async with serve_app(app) as base_url:
        state = app[STATE]
        client = CameraClient(FakeCameraTrack([scene.image], fps=30.0))
        try:
            await client.connect(http, base_url)
            assert len(state.registry) == 1
            await client.wait_for(lambda: len(client.messages) >= 8, 20.0, "8 detection messages")
            await client.wait_for(lambda: client.frames_received >= 30, 10.0, "30 video frames")
            frame = client.frames[-1].to_ndarray(format="bgr24")
        finally:
            await client.close()
        session_closed = asyncio.get_running_loop().time()
        while len(state.registry) and asyncio.get_running_loop().time() - session_closed < 10:
            await asyncio.sleep(0.05)
        after_hangup: dict[str, Any] = {
            "sessions": len(state.registry),
            "seconds": asyncio.get_running_loop().time() - session_closed,
            "worker_sessions": state.worker.sessions if state.worker else None,
            "metrics": state.metrics.render().decode(),
        }
    await asyncio.sleep(0.2)
    leftover = [task for task in asyncio.all_tasks() - tasks_before if not task.done()]
    leftover = [task for task in leftover if task is not asyncio.current_task()]
    after_hangup["tasks"] = leftover
    # The event loop's default executor keeps its idle pool threads (asyncio_N) for reuse; nothing else stays.
    after_hangup["threads"] = [
        thread.name
        for thread in set(threading.enumerate()) - threads_before
        if not thread.name.startswith("asyncio_")
    ]
    return client, client.messages, frame, after_hangup


def check_cleanup(after: dict[str, Any]) -> None:
    assert after["sessions"] == 0, "the session outlived the hang-up"
    assert after["seconds"] < 5.0, f"hang-up took {after['seconds']:.1f} s to notice (idle timeout is 5 s)"
    assert after["worker_sessions"] == []
    assert after["tasks"] == [], f"tasks left behind: {after['tasks']}"
    assert after["threads"] == [], f"threads left behind: {after['threads']}"
    assert 'maskcam_sessions_closed_total{cause="hangup"} 1.0' in after["metrics"]


@pytest.mark.slow
async def test_annotated_video_and_detections_come_back(http: aiohttp.ClientSession) -> None:
    scene = two_face_frame()
    recorders: list[MemoryRecorder] = []
    client, messages, frame, after = await run_session(http, DetectorOnly(), scene, recorders)

    message = messages[-1]
    assert message["type"] == "detections" and message["session"] == client.session_id
    assert (message["width"], message["height"]) == (640, 480)
    assert message["frame"] > messages[0]["frame"]
    assert message["inference_ms"] > 0
    assert message["counts"] == {"with_mask": 0, "without_mask": 0, "mask_worn_incorrectly": 2}
    boxes = [face["box"] for face in message["faces"]]
    assert any(inside(box, scene.masked_region) for box in boxes)
    assert any(inside(box, scene.unmasked_region) for box in boxes)

    # The returned video shows the outline in the label's colour where the faces are; the source has none.
    colour = np.array(LABEL_COLOURS_BGR["mask_worn_incorrectly"], dtype=float)
    for box in boxes:
        returned = outline_colour(frame, box)
        original = outline_colour(scene.image, box)
        assert np.abs(returned - colour).max() < 60, f"outline {returned} is not {colour}"
        assert np.abs(original - colour).max() > 60
    assert np.abs(frame[440:470, 280:360].astype(float) - scene.image[440:470, 280:360]).mean() < 10

    # With recording on, every analysed frame goes to the recorder annotated, with its message.
    [recorder] = recorders
    assert recorder.session_id == client.session_id and recorder.closed
    assert len(recorder.frames) >= len(messages) and recorder.messages[-1]["faces"]
    recorded_box = recorder.messages[-1]["faces"][0]["box"]
    assert np.abs(outline_colour(recorder.frames[-1], recorded_box) - colour).max() < 30

    check_cleanup(after)


@pytest.mark.slow
async def test_trained_model_labels_masked_and_unmasked_faces(http: aiohttp.ClientSession) -> None:
    if not TRAINED_MODEL.is_file():
        pytest.skip(f"needs the trained classifier {TRAINED_MODEL.relative_to(PROJECT_ROOT)} (models issue)")
    scene = two_face_frame()
    pipeline = load_models(CONFIG)
    _, messages, frame, after = await run_session(http, pipeline, scene)

    for message in messages[-5:]:
        labels = {
            "masked": [f["label"] for f in message["faces"] if inside(f["box"], scene.masked_region)],
            "unmasked": [f["label"] for f in message["faces"] if inside(f["box"], scene.unmasked_region)],
        }
        assert labels == {"masked": ["with_mask"], "unmasked": ["without_mask"]}, labels
    for face in messages[-1]["faces"]:
        colour = np.array(LABEL_COLOURS_BGR[face["label"]], dtype=float)
        assert np.abs(outline_colour(frame, face["box"]) - colour).max() < 60
    check_cleanup(after)


def test_trained_model_path_is_the_server_default() -> None:
    assert Path(ServerConfig().classifier) == TRAINED_MODEL
