"""The server's side of the entrance screen (issue 20): a full server says when to try again, a page that
did not ask to be counted is not, the video names a class only in a language it can draw, and the
startup message names the dashboard."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp
import numpy as np
import pytest

from run_server import print_banner
from server.app import STATE, create_app
from server.pages import NOTICES, texts
from server.rtc.overlay import overlay_pixels
from server.settings import ServerConfig
from tests.media_helpers import CameraClient, FakeCameraTrack, SlowAnalyser, blank_frame, serve_app
from vision.draw import draw_detections
from vision.labels import LABELS, SHORT_TEXT
from vision.pipeline import Detection

CONFIG = ServerConfig(offers_per_minute=0, idle_timeout=3.0)


def stand_in(_: ServerConfig) -> SlowAnalyser:
    return SlowAnalyser(0.005)


async def live_locations(http: aiohttp.ClientSession, base_url: str) -> list[str]:
    async with http.get(f"{base_url}/api/live") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
    return [camera["location"] for camera in body["cameras"]]


async def test_only_a_camera_that_asks_to_be_counted_is(http: aiohttp.ClientSession) -> None:
    """The main page without ?location= offers with `"count": false`: no passages, not among the cameras
    counted now; the kiosk (and any client that says nothing) is counted."""
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        desk = CameraClient(FakeCameraTrack([blank_frame()]))
        entrance = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await desk.connect(http, base_url, count=False)
            await desk.wait_for(lambda: len(desk.messages) >= 3, 10.0, "analysed frames")
            assert await live_locations(http, base_url) == []
            await entrance.connect(http, base_url, location="Main entrance")
            await entrance.wait_for(lambda: len(entrance.messages) >= 3, 10.0, "analysed frames")
            assert await live_locations(http, base_url) == ["Main entrance"]
            assert len(app[STATE].registry) == 2
        finally:
            await desk.close()
            await entrance.close()


@pytest.mark.parametrize(
    ("field", "value"), [("count", "no"), ("count", 0), ("lang", 5), ("lang", "x"), ("lang", "k" * 40)]
)
async def test_a_bad_count_or_language_is_refused(
    http: aiohttp.ClientSession, field: str, value: object
) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await client.pc.setLocalDescription(await client.pc.createOffer())
            offer = {"sdp": client.pc.localDescription.sdp, "type": "offer", field: value}
            async with http.post(f"{base_url}/offer", json=offer) as response:
                assert response.status == 400
                assert (await response.json())["reason"] == "bad_offer"
            assert len(app[STATE].registry) == 0
        finally:
            await client.close()


async def test_a_korean_viewer_gets_symbols_in_the_video(http: aiohttp.ClientSession) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        english = CameraClient(FakeCameraTrack([blank_frame()]))
        korean = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await english.connect(http, base_url, lang="en")
            await korean.connect(http, base_url, lang="ko")
            by_id = {session.id: session for session in app[STATE].registry.sessions()}
            assert by_id[str(english.session_id)].label_text is True
            assert by_id[str(korean.session_id)].label_text is False
        finally:
            await english.close()
            await korean.close()


def drawn_width(with_text: bool, label: str) -> int:
    canvas = np.zeros((480, 640, 3), dtype=np.uint8)
    draw_detections(
        canvas, [Detection(box=(300, 200, 360, 280), label=label, score=0.9, face_confidence=0.9)], with_text
    )
    tag = canvas[:200]  # the label's tag sits above the box
    columns = np.flatnonzero(tag.any(axis=(0, 2)))
    assert (tag >= 200).all(axis=2).any(), "no white mark in the tag"
    return int(columns[-1] - columns[0] + 1)


@pytest.mark.parametrize("label", LABELS)
def test_the_video_draws_a_symbol_where_it_cannot_name_the_class(label: str) -> None:
    """Without text each class gets a small square of its colour with its white symbol, narrower than any
    of the names; the symbols of the three classes differ."""
    assert drawn_width(False, label) < drawn_width(True, label)
    with_text, symbol_only = (
        overlay_pixels(
            640, 480, [Detection(box=(300, 200, 360, 280), label=label, score=0.9, face_confidence=0.9)], text
        )[1]
        for text in (True, False)
    )
    assert 0 < symbol_only.size < with_text.size


def test_the_three_symbols_differ() -> None:
    tags = []
    for label in LABELS:
        canvas = np.zeros((480, 640, 3), dtype=np.uint8)
        draw_detections(
            canvas, [Detection(box=(300, 200, 360, 280), label=label, score=0.9, face_confidence=0.9)], False
        )
        tags.append((canvas >= 200).all(axis=2))
    assert all((a != b).any() for i, a in enumerate(tags) for b in tags[i + 1 :])


def test_the_video_names_each_class_as_the_pages_do() -> None:
    assert SHORT_TEXT == {
        "with_mask": "With mask",
        "without_mask": "No mask",
        "mask_worn_incorrectly": "Worn incorrectly",
    }


def test_the_startup_message_names_the_dashboard(capsys: pytest.CaptureFixture[str]) -> None:
    print_banner(replace(CONFIG, host="127.0.0.1", admin_token="op"), 8080)
    out = capsys.readouterr().out
    assert "kiosk: http://localhost:8080/kiosk" in out
    assert "dashboard: http://localhost:8080/dashboard?token=op" in out
    print_banner(replace(CONFIG, host="127.0.0.1"), 8080)
    out = capsys.readouterr().out
    assert "dashboard: http://localhost:8080/dashboard\n" in out and "this machine only" in out


async def test_a_wrong_path_gets_a_page_in_the_readers_language(http: aiohttp.ClientSession) -> None:
    app = create_app(CONFIG, source_factory=stand_in)
    async with serve_app(app) as base_url:
        async with http.get(f"{base_url}/nope", headers={"Accept": "text/html"}) as response:
            assert response.status == 404 and response.content_type == "text/html"
            page = await response.text()
        assert '<html lang="en">' in page and "<h1>Page not found</h1>" in page
        assert 'href="/static/css/notice.css"' in page
        async with http.get(f"{base_url}/nope?lang=ko", headers={"Accept": "text/html"}) as response:
            assert "<h1>페이지를 찾을 수 없습니다</h1>" in await response.text()
        async with http.get(f"{base_url}/nope", headers={"Accept": "application/json"}) as response:
            assert response.status == 404 and (await response.json())["reason"] == "not_found"


async def test_the_token_page_speaks_the_readers_language_and_is_styled(http: aiohttp.ClientSession) -> None:
    app = create_app(replace(CONFIG, token="s3cret"), source_factory=stand_in)
    async with serve_app(app) as base_url:
        async with http.get(
            f"{base_url}/kiosk", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"}
        ) as response:
            assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
            page = await response.text()
        assert '<html lang="ko">' in page and "<h1>접근 토큰이 필요합니다</h1>" in page
        async with http.get(f"{base_url}/?lang=en", headers={"Accept-Language": "ko"}) as response:
            assert "<h1>Access token required</h1>" in await response.text()
        for sheet in ("/static/css/base.css", "/static/css/notice.css"):
            async with http.get(f"{base_url}{sheet}") as response:
                assert response.status == 200, sheet
        async with http.get(f"{base_url}/static/css/kiosk.css") as response:
            assert response.status == 401


def test_every_notice_has_its_texts_in_every_language() -> None:
    for language, table in texts().items():
        for notice in NOTICES:
            assert table[f"notice.{notice}.title"] and table[f"notice.{notice}.body"], (language, notice)
