"""A real aiortc peer that asks for the page-drawn overlay: the answer's video is recvonly (no video back,
nothing drawn or encoded) and the detections still arrive; the server's `--overlay` is the default an
offer can override; a wrong value is a clear 400 that opens no session."""

from __future__ import annotations

import aiohttp
import pytest

from server.app import STATE, create_app
from server.settings import ServerConfig
from tests.media_helpers import CameraClient, FakeCameraTrack, serve_app, two_face_frame
from tests.test_server_loopback import DetectorOnly


def video_direction(sdp: str) -> str:
    video = sdp.split("m=video", 1)[1].split("\nm=", 1)[0]
    return next(d for d in ("sendrecv", "recvonly", "sendonly", "inactive") if f"a={d}" in video)


async def stream(
    http: aiohttp.ClientSession, config: ServerConfig, overlay: str | None
) -> tuple[str, int, int]:
    """Stream two faces until 6 messages came; (answer's video direction, video frames back, frames the
    server sent)."""
    app = create_app(config, source_factory=lambda _: DetectorOnly())
    scene = two_face_frame()
    async with serve_app(app) as url:
        client = CameraClient(FakeCameraTrack([scene.image], fps=30.0))
        try:
            answer = await client.connect(http, url, overlay=overlay)
            await client.wait_for(lambda: len(client.messages) >= 6, 20.0, "6 detection messages")
            await client.wait_for(
                lambda: client.frames_received > 0 or len(client.messages) >= 12, 10.0, "time"
            )
            assert all(len(m["faces"]) == 2 for m in client.messages[-3:])
            [session] = app[STATE].registry.sessions()
            assert session.video is not None
            sent = session.video.frames_sent
        finally:
            await client.close()
    return video_direction(answer["sdp"]), client.frames_received, sent


@pytest.mark.slow
async def test_page_mode_answers_recvonly_and_sends_only_detections(http: aiohttp.ClientSession) -> None:
    config = ServerConfig(offers_per_minute=0, idle_timeout=5.0)
    assert await stream(http, config, "page") == ("recvonly", 0, 0)
    # The same server draws and sends the video back to a client that does not ask for page mode.
    direction, frames_back, sent = await stream(http, config, None)
    assert direction == "sendrecv" and frames_back > 0 and sent > 0


@pytest.mark.slow
async def test_the_servers_overlay_is_the_default_an_offer_overrides(http: aiohttp.ClientSession) -> None:
    config = ServerConfig(offers_per_minute=0, idle_timeout=5.0, overlay="page")
    assert (await stream(http, config, None))[0] == "recvonly"
    assert (await stream(http, config, "server"))[0] == "sendrecv"


async def test_a_wrong_overlay_is_refused_and_opens_no_session(http: aiohttp.ClientSession) -> None:
    app = create_app(ServerConfig(offers_per_minute=0), source_factory=lambda _: DetectorOnly())
    async with serve_app(app) as url:
        async with http.post(
            f"{url}/offer", json={"sdp": "v=0", "type": "offer", "overlay": "both"}
        ) as response:
            body = await response.json()
        async with http.get(f"{url}/config") as response:
            config = await response.json()
        assert response.status == 200
        assert len(app[STATE].registry) == 0
    assert body["reason"] == "bad_overlay" and '"server" or "page"' in body["error"]
    assert config["overlay"] == {"mode": "server", "frameRate": 15, "staleSeconds": 1.0}
