"""The dashboard's server side through the real app: `/dashboard` and its access, `/api/today`, the kiosk's
`/today`, `/api/summary.csv`, and the camera settings that `/config` gives the page (`--video-size`)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from server.app import create_app
from server.history.api import SUMMARY_CSV_FIELDS, TODAY_ANSWERS, day_totals, today_in
from server.history.service import HISTORY
from server.history.store import HistoryStore, QuarterCount
from server.security import ADMIN_COOKIE
from server.settings import ConfigError, IceServer, ServerConfig, parse_config, parse_video_size
from tests.media_helpers import serve_app
from tests.test_history_api import BASE, get, non_loopback_address, on_every_interface
from tests.test_history_store import HOUR_MS, record
from tests.test_server_app import stand_in
from vision.labels import LABELS


def _now_ms() -> int:
    return round(time.time() * 1000)


@pytest.fixture
def today_history(tmp_path: Path) -> Iterator[str]:
    """Passages of today (in the server's zone, UTC here) at two locations, and one of two days ago."""
    path = str(tmp_path / "history.sqlite3")
    store = HistoryStore(path)
    store.open()
    day = today_in(UTC)
    store.write(
        "b",
        [
            record(day.since_ms + 60_000, "Main entrance", "with_mask"),
            record(day.since_ms + 120_000, "Main entrance", "with_mask"),
            record(day.since_ms + 180_000, "Main entrance", "without_mask"),
            record(day.since_ms + 240_000, "Side door", "mask_worn_incorrectly"),
            record(day.since_ms - 48 * HOUR_MS, "Main entrance", "without_mask"),
        ],
    )
    store.close()
    yield path


@pytest.fixture(autouse=True)
def utc_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")


async def test_today_per_location_for_the_operator_and_for_one_kiosk(
    http: aiohttp.ClientSession, today_history: str
) -> None:
    app = create_app(replace(BASE, history=today_history), source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, f"{base}/api/today")
        assert status == 200 and body["tz"] == "UTC"
        assert body["date"] == datetime.now(UTC).date().isoformat()
        assert body["locations"] == [
            {
                "location": "Main entrance",
                "people": 3,
                "with_mask": 2,
                "without_mask": 1,
                "mask_worn_incorrectly": 0,
                "compliance": 0.6667,
            },
            {
                "location": "Side door",
                "people": 1,
                "with_mask": 0,
                "without_mask": 0,
                "mask_worn_incorrectly": 1,
                "compliance": 0.0,
            },
        ]
        status, body = await get(http, f"{base}/today", params={"location": "Main  entrance"})
        assert status == 200
        assert (body["location"], body["people"], body["with_mask"], body["without_mask"]) == (
            "Main entrance",
            3,
            2,
            1,
        )
        status, body = await get(http, f"{base}/today", params={"location": "Back yard"})
        assert status == 200 and body["people"] == 0 and body["compliance"] is None
        status, body = await get(http, f"{base}/today")
        assert status == 200 and body["location"] == "unnamed" and body["people"] == 0
        status, body = await get(http, f"{base}/api/today", params={"location": "Side door"})
        assert [entry["location"] for entry in body["locations"]] == ["Side door"]


async def test_many_kiosks_asking_at_once_cost_one_read(
    http: aiohttp.ClientSession, today_history: str
) -> None:
    app = create_app(replace(BASE, history=today_history), source_factory=stand_in)
    async with serve_app(app) as base:
        answers = app[TODAY_ANSWERS]
        url = f"{base}/today"
        replies = await asyncio.gather(
            *(get(http, url, params={"location": "Main entrance"}) for _ in range(20))
        )
        assert all(status == 200 and body["people"] == 3 for status, body in replies)
        assert answers.computed == 1
        # Another location (or the operator's view of all) is another read; a repeat soon after is none.
        await get(http, url, params={"location": "Side door"})
        await get(http, f"{base}/api/today")
        await get(http, url, params={"location": "Main entrance"})
        assert answers.computed == 3
        # A passage written by this server is counted at once, not after the answer's 2 s.
        writer = app[HISTORY].writer
        assert writer is not None
        assert writer.submit(record(_now_ms(), "Main entrance", "with_mask"))
        assert await asyncio.to_thread(writer.flush, 10.0)
        status, body = await get(http, url, params={"location": "Main entrance"})
        assert status == 200 and body["people"] == 4 and answers.computed == 4


async def test_today_refuses_bad_parameters(http: aiohttp.ClientSession, today_history: str) -> None:
    app = create_app(replace(BASE, history=today_history), source_factory=stand_in)
    async with serve_app(app) as base:
        for route in ("/today", "/api/today"):
            for params in ({"since": "2026-01-01"}, {"tz": "Mars/Olympus"}, {"location": "<b>"}):
                status, body = await get(http, base + route, params=params)
                assert status == 400 and body["reason"] == "bad_query", (route, params, body)
            status, body = await get(http, base + route, params={"limit": "5"})
            assert status == 400 and '"limit"' in body["error"]


async def test_today_in_counts_mode_and_without_history(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    path = str(tmp_path / "counts.sqlite3")
    store = HistoryStore(path, "counts")
    store.open()
    now = _now_ms()
    day = today_in(UTC)
    store.write("b1", [record(max(day.since_ms, now - 1000), "Gate", "with_mask")])
    store.close()
    app = create_app(replace(BASE, history=path, history_detail="counts"), source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, f"{base}/today", params={"location": "Gate"})
        assert status == 200 and (body["people"], body["with_mask"], body["compliance"]) == (1, 1, 1.0)
        assert (await get(http, f"{base}/api/passages"))[1]["reason"] == "counts_only"
    app = create_app(BASE, source_factory=stand_in)
    async with serve_app(app) as base:
        for route in ("/today", "/api/today"):
            status, body = await get(http, base + route)
            assert status == 409 and body["reason"] == "history_off"


async def test_summary_csv_has_the_rows_of_the_summary(
    http: aiohttp.ClientSession, today_history: str
) -> None:
    app = create_app(replace(BASE, history=today_history), source_factory=stand_in)
    async with serve_app(app) as base:
        for params in ({"bucket": "day"}, {"bucket": "hour", "location": "Main entrance"}):
            status, summary = await get(http, f"{base}/api/summary", params={**params, "tz": "Asia/Seoul"})
            assert status == 200
            async with http.get(f"{base}/api/summary.csv", params={**params, "tz": "Asia/Seoul"}) as response:
                assert response.status == 200 and response.content_type == "text/csv"
                assert f"summary-{params['bucket']}.csv" in response.headers["Content-Disposition"]
                rows = list(csv.DictReader(io.StringIO(await response.text())))
            assert tuple(rows[0]) == SUMMARY_CSV_FIELDS
            assert rows == [
                {key: str(bucket[key]) for key in SUMMARY_CSV_FIELDS} for bucket in summary["buckets"]
            ]
            assert rows and all(row["start"].endswith("+09:00") for row in rows)
        status, body = await get(http, f"{base}/api/summary.csv", params={"bucket": "week"})
        assert status == 400 and body["reason"] == "bad_query"


def test_today_has_the_days_real_length_across_a_change_of_clocks() -> None:
    paris = ZoneInfo("Europe/Paris")
    day = today_in(paris, datetime(2026, 3, 29, 12, 0, tzinfo=paris))  # clocks go forward at 02:00
    assert day.date.isoformat() == "2026-03-29" and day.until_ms - day.since_ms == 23 * HOUR_MS
    late = today_in(paris, datetime(2026, 10, 25, 23, 30, tzinfo=paris))
    assert late.until_ms - late.since_ms == 25 * HOUR_MS


def test_day_totals_rate_counts_only_masks_worn_properly() -> None:
    rows = [QuarterCount(1, "A", "with_mask", 3), QuarterCount(2, "A", "mask_worn_incorrectly", 1)]
    assert day_totals(rows)["A"] == {
        "people": 4,
        "with_mask": 3,
        "without_mask": 0,
        "mask_worn_incorrectly": 1,
        "compliance": 0.75,
    }


async def test_dashboard_wants_the_operator_token_not_the_camera_token(
    http: aiohttp.ClientSession, today_history: str
) -> None:
    config = replace(BASE, history=today_history, token="camera-secret", admin_token="admin-secret")
    app = create_app(config, source_factory=stand_in)
    async with serve_app(app) as base:
        for params in ({}, {"token": "camera-secret"}, {"token": "wrong"}):
            async with http.get(f"{base}/dashboard", params=params) as response:
                assert response.status == 401, params
                assert response.content_type == "text/html"
                assert "Operator token required" in await response.text()
        status, _ = await get(http, f"{base}/dashboard", headers={"Authorization": "Bearer camera-secret"})
        assert status == 401
        # The kiosk's counts need the camera token, and the operator's token does not stand in for it.
        assert (await get(http, f"{base}/today"))[0] == 401
        assert (await get(http, f"{base}/today", params={"token": "camera-secret"}))[0] == 200
        assert (await get(http, f"{base}/api/today", params={"token": "camera-secret"}))[0] == 401
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(f"{base}/dashboard", params={"token": "admin-secret"}) as response:
                assert response.status == 200 and "<html" in await response.text()
                assert ADMIN_COOKIE in response.cookies
            # The operator's cookie opens the dashboard's files, /config and the API, not the cameras' routes.
            needs = ("/static/js/dashboard.js", "/static/vendor/uplot/uPlot.esm.js", "/api/today", "/config")
            for needed in needs:
                async with browser.get(base + needed) as response:
                    assert response.status == 200, needed
            for camera_route in ("/today", "/metrics", "/", "/kiosk"):
                async with browser.get(base + camera_route) as response:
                    assert response.status == 401, camera_route


async def test_the_operator_token_alone_does_not_get_the_cameras_turn_credentials(
    http: aiohttp.ClientSession, today_history: str
) -> None:
    turn = IceServer("turn:turn.example:3478", username="cam", credential="turn-secret")
    config = replace(
        BASE, history=today_history, token="camera-secret", admin_token="admin-secret", ice_servers=(turn,)
    )
    app = create_app(config, source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, f"{base}/config", headers={"Authorization": "Bearer admin-secret"})
        assert status == 200 and body["iceServers"] == [] and body["labels"] == list(LABELS)
        status, body = await get(http, f"{base}/config", headers={"Authorization": "Bearer camera-secret"})
        assert status == 200 and body["iceServers"] == [turn.to_json()]


async def test_with_a_camera_token_and_no_admin_token_the_dashboard_wants_both(today_history: str) -> None:
    """No operator token: the dashboard is a page like the others (the camera token) and, like `/api/*`,
    answers this machine only; from elsewhere the camera token does not open it."""
    config = replace(BASE, history=today_history, token="camera-secret")
    app = create_app(config, source_factory=stand_in)
    async with on_every_interface(app) as port, aiohttp.ClientSession() as http:
        local = f"http://127.0.0.1:{port}"
        for path in ("/dashboard", "/static/js/dashboard.js", "/config"):
            assert (await get(http, local + path))[0] == 401, path
            assert (await get(http, local + path, params={"token": "camera-secret"}))[0] == 200, path
        assert (await get(http, local + "/api/today"))[0] == 200, "the history API: this machine's"
        remote = f"http://{non_loopback_address()}:{port}"
        status, body = await get(http, remote + "/dashboard", params={"token": "camera-secret"})
        assert status == 403 and "--admin-token" in body
        assert (await get(http, remote + "/api/today", params={"token": "camera-secret"}))[0] == 403


async def test_without_an_admin_token_the_dashboard_answers_this_machine_only(today_history: str) -> None:
    app = create_app(replace(BASE, history=today_history), source_factory=stand_in)
    async with on_every_interface(app) as port, aiohttp.ClientSession() as http:
        assert (await get(http, f"http://127.0.0.1:{port}/dashboard"))[0] == 200
        status, body = await get(http, f"http://{non_loopback_address()}:{port}/dashboard")
        assert status == 403 and "--admin-token" in body


async def test_config_gives_the_page_its_camera_size_labels_and_channel(http: aiohttp.ClientSession) -> None:
    config = parse_config(["--video-size", "320x240"], environ={})
    app = create_app(replace(config, offers_per_minute=0, history=None), source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, f"{base}/config")
    assert status == 200
    assert body["video"] == {"width": 320, "height": 240, "frameRate": 30}
    assert body["labels"] == list(LABELS) and body["dataChannelLabel"] == "detections"
    assert list(body["verdicts"]) == ["without_mask", "mask_worn_incorrectly", "with_mask"]
    assert set(body["verdicts"]) == set(LABELS) and body["compliantLabels"] == ["with_mask"]


def test_video_size_setting() -> None:
    assert parse_config([], environ={}).video_size == (640, 480)
    assert parse_config([], environ={"MASKCAM_VIDEO_SIZE": "1280x720"}).video_size == (1280, 720)
    assert parse_video_size(" 320X240 ") == (320, 240)
    for bad in ("640", "641x480", "8x8", "x", "99999x480"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_video_size(bad)
    with pytest.raises(SystemExit):
        parse_config(["--video-size", "big"], environ={})
    with pytest.raises((SystemExit, ConfigError)):
        parse_config([], environ={"MASKCAM_VIDEO_SIZE": "641x480"})
    assert ServerConfig().video_size == (640, 480)
