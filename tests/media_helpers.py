"""Test media: 640x480 camera frames made from real face photos, fake camera tracks and analysers.

The photos stay in ../shared/data (never copied into the repository); tests that need them skip when
that folder is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from vision.pipeline import Detection

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FACES_DIR = DATA_DIR / "faces"
# Test-split photos that the detector finds with confidence ~1.0 when letterboxed as below:
# a blue surgical mask worn properly, and a bare face looking at the camera.
MASKED_FACE = FACES_DIR / "with_mask" / "cd7_0_0_0_copy_61_5a23600d.jpg"
UNMASKED_FACE = FACES_DIR / "without_mask" / "cd7_108_df3b80b9.jpg"
FRAME_SIZE = (640, 480)
BACKGROUND = 96
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


def require_face_photos() -> tuple[np.ndarray, np.ndarray]:
    """The masked and the unmasked photo (BGR), or skip the test when ../shared/data is absent."""
    if not (MASKED_FACE.is_file() and UNMASKED_FACE.is_file()):
        pytest.skip(f"needs the face photos of ../shared/data ({FACES_DIR} not found)")
    masked = cv2.imread(str(MASKED_FACE))
    unmasked = cv2.imread(str(UNMASKED_FACE))
    assert masked is not None and unmasked is not None
    # The unmasked photo's top strip is a wall poster with small faces, which YuNet rightly finds: cut
    # it, so that the frames hold exactly the two faces the tests count.
    return masked, unmasked[round(0.15 * unmasked.shape[0]) :]


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = min(width / image.shape[1], height / image.shape[0])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def place(frame: np.ndarray, image: np.ndarray, centre_x: int, height: int) -> tuple[int, int, int, int]:
    """Paste `image` scaled to `height` px high, centred at `centre_x`; return where (x0, y0, x1, y1)."""
    tile = _fit(image, frame.shape[1], height)
    y0 = (frame.shape[0] - tile.shape[0]) // 2
    x0 = min(max(centre_x - tile.shape[1] // 2, 0), frame.shape[1] - tile.shape[1])
    frame[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    return x0, y0, x0 + tile.shape[1], y0 + tile.shape[0]


@dataclass(frozen=True)
class TwoFaceFrame:
    """A 640x480 frame with the masked photo on the left and the unmasked one on the right."""

    image: np.ndarray
    masked_region: tuple[int, int, int, int]
    unmasked_region: tuple[int, int, int, int]


def two_face_frame() -> TwoFaceFrame:
    masked, unmasked = require_face_photos()
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), BACKGROUND, dtype=np.uint8)
    masked_region = place(frame, masked, FRAME_SIZE[0] // 4, 240)
    unmasked_region = place(frame, unmasked, 3 * FRAME_SIZE[0] // 4, 240)
    return TwoFaceFrame(frame, masked_region, unmasked_region)


def blank_frame(width: int = FRAME_SIZE[0], height: int = FRAME_SIZE[1]) -> np.ndarray:
    return np.full((height, width, 3), BACKGROUND, dtype=np.uint8)


class FakeCameraTrack(MediaStreamTrack):
    """A camera at `fps` that cycles through BGR images; remembers when each frame (by pts) was captured.

    Frame n is captured at start + n / fps whether or not anyone reads it, so a consumer that reads
    slower than the camera gets ever older frames, as from aiortc's unbounded remote-track queue.
    """

    kind = "video"

    def __init__(
        self,
        images: Sequence[np.ndarray],
        fps: float = 30.0,
        limit: int | None = None,
        order: Sequence[int] | None = None,
    ) -> None:
        """`order`: indices into `images`, one per frame, cycled (a long scripted scene from few images);
        by default every image in turn."""
        super().__init__()
        self._frames = [
            av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p") for image in images
        ]
        self._order = list(order) if order is not None else list(range(len(images)))
        self.fps = fps
        self.limit = limit
        self.sent = 0
        self.captured_at: dict[int, float] = {}
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or (self.limit is not None and self.sent >= self.limit):
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        source = self._frames[self._order[self.sent % len(self._order)]]
        frame = av.VideoFrame.from_ndarray(source.to_ndarray(), format="yuv420p")
        frame.pts = round(self.sent * 90000 / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.captured_at[frame.pts] = due
        self.sent += 1
        return frame


class SlowAnalyser:
    """An analyser that takes `seconds` per frame (in its own thread) and finds one fixed face."""

    def __init__(self, seconds: float, box: tuple[int, int, int, int] = (100, 100, 300, 340)) -> None:
        self.seconds = seconds
        self.box = box
        self.calls = 0
        self.sizes: list[tuple[int, int]] = []

    def open_stream(self) -> SlowAnalyser:
        """Every stream shares it (it keeps no state of a stream)."""
        return self

    def analyse(self, image: np.ndarray) -> list[Detection]:
        time.sleep(self.seconds)
        self.calls += 1
        self.sizes.append((image.shape[1], image.shape[0]))
        return [Detection(box=self.box, label="without_mask", score=0.97, face_confidence=0.99)]


class CameraClient:
    """A real aiortc peer, as the page behaves: sends a camera, opens `detections`, reads the video back."""

    def __init__(self, camera: MediaStreamTrack, keep_frames: int = 5) -> None:
        self.pc = RTCPeerConnection()
        self.camera = camera
        self.messages: list[dict[str, Any]] = []
        self.frames: list[av.VideoFrame] = []
        self.frames_received = 0
        self.session_id: str | None = None
        self._keep = keep_frames
        self._reader: asyncio.Task[None] | None = None
        self.pc.addTrack(camera)
        self.channel = self.pc.createDataChannel("detections")
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)

    def _on_message(self, message: object) -> None:
        if isinstance(message, str):
            self.messages.append(json.loads(message))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                self.frames_received += 1
                self.frames = [*self.frames[-(self._keep - 1) :], frame]
        except MediaStreamError:
            return

    async def connect(
        self, http: aiohttp.ClientSession, base_url: str, location: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Offer -> POST /offer -> answer; returns the server's JSON (raises on an error status). `fields`
        go into the offer's body too (e.g. `count=False`, `lang="ko"`)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer: dict[str, Any] = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}
        if location is not None:
            offer["location"] = location
        offer.update(fields)
        async with http.post(f"{base_url}/offer", json=offer) as response:
            body: dict[str, Any] = await response.json()
            if response.status != 200:
                raise AssertionError(f"/offer answered {response.status}: {body}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        self.session_id = body["session"]
        return body

    async def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve the real app on a real TCP port of 127.0.0.1; yields its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
