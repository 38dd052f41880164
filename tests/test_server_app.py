"""The app over HTTP: bad offers get a 4xx JSON error and the server keeps serving; capacity; settings."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import ClassVar

import aiohttp
import numpy as np
import pytest
from aiortc import AudioStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender

from server.analysis.analyser import AnalyserSource
from server.analysis.worker import AnalysisSlot, AnalysisWorker, ResultHandler
from server.app import STATE, create_app
from server.rtc.session import Recorder, rtc_configuration
from server.rtc.track import AnnotatedVideoTrack
from server.settings import IceServer, ServerConfig
from tests.media_helpers import CameraClient, FakeCameraTrack, SlowAnalyser, blank_frame, serve_app
from vision.pipeline import Detection

CONFIG = ServerConfig(offers_per_minute=0, idle_timeout=3.0)


def stand_in(_: ServerConfig) -> AnalyserSource:
    return SlowAnalyser(0.005)


async def good_offer_works(http: aiohttp.ClientSession, base_url: str) -> None:
    client = CameraClient(FakeCameraTrack([blank_frame()]))
    try:
        answer = await client.connect(http, base_url)
        assert answer["type"] == "answer" and answer["session"]
        video = answer["sdp"].split("m=video")[1].split("m=")[0]
        first_payload = video.split("\r\n")[0].split()[2]
        assert f"a=rtpmap:{first_payload} VP8/90000" in video, "VP8 is not the preferred codec"
        assert f"a=fmtp:{first_payload} x-google-min-bitrate=1000;x-google-start-bitrate=1000" in video
        await client.wait_for(lambda: client.frames_received > 0, 10.0, "video from the server")
        await client.wait_for(lambda: client.channel.readyState == "open", 5.0, "the data channel")
        client.channel.send(json.dumps({"type": "ping", "id": 7, "t": 1234.5}))
        client.channel.send("not json")
        await client.wait_for(lambda: any(m["type"] == "pong" for m in client.messages), 5.0, "a pong")
        [pong] = [m for m in client.messages if m["type"] == "pong"]
        assert (pong["id"], pong["t"]) == (7, 1234.5) and pong["server_time"] > 0
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "bad_json"),
        (b"\xff\xfe\x00", "application/json", 400, "bad_json"),
        (b"[1, 2]", "application/json", 400, "bad_json"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", 400, "bad_json"),
        (b'{"sdp": "v=0", "type": "answer"}', "application/json", 400, "bad_offer"),
        (b'{"type": "offer"}', "application/json", 400, "bad_offer"),
        (b'{"sdp": 12, "type": "offer"}', "application/json", 400, "bad_offer"),
        (b'{"sdp": "garbage\\r\\nm=video nonsense", "type": "offer"}', "application/json", 400, "bad_sdp"),
        (b'{"sdp": "v=0\\r\\n", "type": "offer"}', "text/plain", 400, "bad_sdp"),
        (b'{"sdp": "' + b"x" * 70_000 + b'", "type": "offer"}', "application/json", 413, "too_large"),
    ],
)
async def test_bad_offers_get_a_json_4xx(
    http: aiohttp.ClientSession, body: bytes, content_type: str, status: int, reason: str
) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        async with http.post(
            f"{base_url}/offer", data=body, headers={"Content-Type": content_type}
        ) as response:
            assert response.status == status
            assert response.content_type == "application/json"
            error = await response.json()
        assert error["reason"] == reason and error["error"]
        assert len(app[STATE].registry) == 0
        metrics = await (await http.get(f"{base_url}/metrics")).text()
        assert f'maskcam_offers_rejected_total{{reason="{reason}"}} 1.0' in metrics


async def test_after_bad_offers_a_good_offer_still_works(http: aiohttp.ClientSession) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        for body in (b"{", b'{"sdp": "v=0\\r\\nm=video 9 x", "type": "offer"}', b"x" * 100_000):
            async with http.post(f"{base_url}/offer", data=body) as response:
                assert 400 <= response.status < 500
        await good_offer_works(http, base_url)
        async with http.get(f"{base_url}/healthz") as response:
            assert response.status == 200


async def test_second_session_beyond_capacity_gets_503(http: aiohttp.ClientSession) -> None:
    app = create_app(replace(CONFIG, max_sessions=1), source_factory=stand_in)
    async with serve_app(app) as base_url:
        first = CameraClient(FakeCameraTrack([blank_frame()]))
        second = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await first.connect(http, base_url)
            await second.pc.setLocalDescription(await second.pc.createOffer())
            offer = {"sdp": second.pc.localDescription.sdp, "type": "offer"}
            async with http.post(f"{base_url}/offer", json=offer) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "10"  # the pages wait that long (retry.js)
                error = await response.json()
            assert error["reason"] == "capacity" and error["maxSessions"] == 1
            assert len(app[STATE].registry) == 1
        finally:
            await first.close()
            await second.close()
        # Once the first camera hangs up, its place is free again.
        registry = app[STATE].registry
        for _ in range(100):
            if len(registry) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(registry) == 0
        await good_offer_works(http, base_url)


async def test_config_health_metrics_and_pages(http: aiohttp.ClientSession) -> None:
    ice = (IceServer("turn:turn.example.org:3478", "user", "secret"), IceServer("stun:stun.example.org"))
    app = create_app(replace(CONFIG, ice_servers=ice, max_sessions=3), source_factory=stand_in)
    async with serve_app(app) as base_url:
        config = await (await http.get(f"{base_url}/config")).json()
        assert config["iceServers"] == [
            {"urls": "turn:turn.example.org:3478", "username": "user", "credential": "secret"},
            {"urls": "stun:stun.example.org"},
        ]
        assert config["maxSessions"] == 3
        assert config["dataChannelLabel"] == "detections"
        assert set(config["labelColours"]) == {"with_mask", "without_mask", "mask_worn_incorrectly"}
        health = await http.get(f"{base_url}/healthz")
        assert health.status == 200
        assert (await health.json())["status"] == "ok"
        metrics = await http.get(f"{base_url}/metrics")
        text = await metrics.text()
        assert metrics.content_type == "text/plain"
        for name in ("maskcam_active_sessions", "maskcam_frames_received_total", "maskcam_analysis_seconds"):
            assert name in text
        page = await http.get(f"{base_url}/")
        assert page.status in (200, 404)
        assert "Content-Security-Policy" in page.headers


async def test_health_is_503_when_the_analysis_worker_is_not_running(http: aiohttp.ClientSession) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        async with http.get(f"{base_url}/healthz") as response:
            assert response.status == 200
        worker = app[STATE].worker
        assert worker is not None
        worker.stop()
        async with http.get(f"{base_url}/healthz") as response:
            assert response.status == 503
            assert (await response.json())["status"] == "loading"


async def test_vp8_is_preferred_even_when_the_offer_lists_h264_first(http: aiohttp.ClientSession) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            [transceiver] = client.pc.getTransceivers()
            codecs = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences(sorted(codecs, key=lambda c: c.mimeType.lower() != "video/h264"))
            await client.pc.setLocalDescription(await client.pc.createOffer())
            offered = client.pc.localDescription.sdp.split("m=video")[1].split("\r\n")[0].split()[2]
            assert f"a=rtpmap:{offered} H264/90000" in client.pc.localDescription.sdp
            offer = {"sdp": client.pc.localDescription.sdp, "type": "offer"}
            async with http.post(f"{base_url}/offer", json=offer) as response:
                answer = await response.json()
            first = answer["sdp"].split("m=video")[1].split("\r\n")[0].split()[2]
            assert f"a=rtpmap:{first} VP8/90000" in answer["sdp"]
        finally:
            await client.close()


class PerStreamAnalysers:
    """Like the face-following models: hands every session its own analyser."""

    def __init__(self) -> None:
        self.streams: list[SlowAnalyser] = []

    def analyse(self, image: np.ndarray) -> list[Detection]:
        raise AssertionError("sessions must use their own stream analyser")

    def open_stream(self) -> SlowAnalyser:
        self.streams.append(SlowAnalyser(0.005))
        return self.streams[-1]


async def test_each_session_gets_its_own_stream_analyser(http: aiohttp.ClientSession) -> None:
    source = PerStreamAnalysers()
    app = create_app(CONFIG, source_factory=lambda _: source)
    async with serve_app(app) as base_url:
        clients = [CameraClient(FakeCameraTrack([blank_frame()])) for _ in range(2)]
        try:
            for client in clients:
                await client.connect(http, base_url)
            await clients[0].wait_for(
                lambda: all(len(client.messages) >= 3 for client in clients), 10.0, "detections on both"
            )
        finally:
            for client in clients:
                await client.close()
    assert len(source.streams) == 2
    assert all(stream.calls >= 3 for stream in source.streams)


def test_configured_ice_servers_reach_aiortc() -> None:
    ice = (IceServer("turn:turn.example.org:3478", "user", "secret"), IceServer("stun:stun.example.org"))
    servers = rtc_configuration(ice).iceServers or []
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        ("turn:turn.example.org:3478", "user", "secret"),
        ("stun:stun.example.org", None, None),
    ]
    assert rtc_configuration(()).iceServers == []


async def test_audio_is_accepted_and_discarded_without_leftovers(http: aiohttp.ClientSession) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    tasks_before = asyncio.all_tasks()
    async with serve_app(app) as base_url:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        client.pc.addTrack(AudioStreamTrack())
        try:
            await client.connect(http, base_url)
            await client.wait_for(lambda: len(client.messages) >= 3, 10.0, "detections")
        finally:
            await client.close()
        registry = app[STATE].registry
        await client.wait_for(lambda: len(registry) == 0, 5.0, "the session to close")
    await asyncio.sleep(0.1)
    assert [task for task in asyncio.all_tasks() - tasks_before if not task.done()] == []


async def test_a_recorder_that_cannot_start_does_not_stop_the_video(http: aiohttp.ClientSession) -> None:
    def unwritable(session_id: str) -> Recorder:
        raise PermissionError(f"cannot write a recording for {session_id}")

    app = create_app(CONFIG, source_factory=stand_in, recorder_factory=unwritable)
    async with serve_app(app) as base_url:
        await good_offer_works(http, base_url)


async def test_a_camera_that_stops_sending_is_closed_after_the_idle_timeout(
    http: aiohttp.ClientSession,
) -> None:
    app = create_app(replace(CONFIG, idle_timeout=1.0), source_factory=stand_in)
    async with serve_app(app) as base_url:
        # The peer stays connected but its camera stops after 15 frames, like a client that froze.
        client = CameraClient(FakeCameraTrack([blank_frame()], limit=15))
        registry = app[STATE].registry
        try:
            await client.connect(http, base_url)
            await client.wait_for(lambda: client.frames_received > 0, 10.0, "video from the server")
            await client.wait_for(lambda: len(registry) == 0, 5.0, "the idle session to close")
        finally:
            await client.close()
        metrics = app[STATE].metrics.render().decode()
        assert 'maskcam_sessions_closed_total{cause="idle"} 1.0' in metrics


class CountingWorker(AnalysisWorker):
    """The analysis worker, counting who opens and closes each session's slot."""

    opened: ClassVar[list[str]] = []
    closed: ClassVar[list[str]] = []

    def open(
        self, session_id: str, loop: asyncio.AbstractEventLoop, on_result: ResultHandler
    ) -> AnalysisSlot:
        self.opened.append(session_id)
        return super().open(session_id, loop, on_result)

    def close(self, session_id: str) -> None:
        self.closed.append(session_id)
        super().close(session_id)


async def test_the_session_opens_and_closes_its_analysis_slot_once(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.app.AnalysisWorker", CountingWorker)
    CountingWorker.opened.clear()
    CountingWorker.closed.clear()
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            answer = await client.connect(http, base_url)
            await client.wait_for(lambda: len(client.messages) >= 3, 10.0, "detections")
        finally:
            await client.close()
        registry = app[STATE].registry
        await client.wait_for(lambda: len(registry) == 0, 5.0, "the session to close")
        worker = app[STATE].worker
        assert worker is not None and worker.sessions == []
    assert CountingWorker.opened == [answer["session"]]
    assert CountingWorker.closed == [answer["session"]], "closed once, by the session"


async def test_the_slot_is_closed_even_when_stopping_the_video_fails(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot is closed before the session's first await: a failure (or a cancellation at shutdown)
    further on leaves no mailbox and analyser behind."""

    def broken_stop(self: AnnotatedVideoTrack) -> None:
        raise RuntimeError("stop failed")

    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        worker = app[STATE].worker
        try:
            answer = await client.connect(http, base_url)
            await client.wait_for(lambda: len(client.messages) >= 3, 10.0, "detections")
            assert worker is not None and worker.sessions == [answer["session"]]
            session = app[STATE].registry.get(answer["session"])
            assert session is not None
            with monkeypatch.context() as patched:
                patched.setattr(AnnotatedVideoTrack, "stop", broken_stop)
                with pytest.raises(RuntimeError, match="stop failed"):
                    await session.close("hangup")
            assert worker.sessions == []
            assert len(app[STATE].registry) == 0
        finally:
            await client.close()
