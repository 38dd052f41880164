"""The history through the real app: a camera's passages reach `/api/*`; parameters, modes and access."""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from server.analysis.worker import AnalysisWorker
from server.app import create_app
from server.history.api import CSV_FIELDS
from server.history.feed import SessionPassages
from server.history.service import HISTORY
from server.history.store import SCHEMA_VERSION, HistoryStore, PassageQuery, PassageRecord, schema_table
from server.metrics import MAX_LOCATION_LABELS, OTHER_LOCATION, ServerMetrics
from server.rtc.session import PeerSession
from server.security import ADMIN_COOKIE
from server.settings import ServerConfig
from tests.browser_helpers import REPO_ROOT
from tests.media_helpers import CameraClient, FakeCameraTrack, SlowAnalyser, blank_frame, serve_app
from tests.test_history_store import HOUR_MS, T0, record
from tests.test_server_app import stand_in
from vision.passages import PassageRule
from vision.pipeline import Detection

# Long retention: the fixed test times would be "older than 90 days" on most days the tests run.
BASE = ServerConfig(offers_per_minute=0, idle_timeout=3.0, history_days=36500)


@pytest.fixture
def history_file(tmp_path: Path) -> str:
    return str(tmp_path / "history.sqlite3")


@pytest.fixture
def filled(history_file: str) -> Iterator[str]:
    """A history with three passages at two locations, written before the server starts."""
    store = HistoryStore(history_file)
    store.open()
    store.write(
        "b",
        [
            record(T0, "Main entrance", "with_mask"),
            record(T0 + HOUR_MS, "Main entrance", "without_mask"),
            record(T0 + 2 * HOUR_MS, "Side door", "mask_worn_incorrectly"),
        ],
    )
    store.close()
    yield history_file


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.get(url, **kwargs) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_a_cameras_passage_reaches_the_api_and_the_metrics(
    http: aiohttp.ClientSession, history_file: str
) -> None:
    app = create_app(replace(BASE, history=history_file), source_factory=stand_in)
    async with serve_app(app) as base:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await client.connect(http, base, location="Main entrance")
            await client.wait_for(lambda: len(client.messages) >= 10, 10.0, "ten analysed frames")
            status, live = await get(http, f"{base}/api/live")
            assert status == 200
            (camera,) = live["cameras"]
            assert camera["location"] == "Main entrance" and camera["verdict"] == "without_mask"
            assert camera["faces"] == 1 and camera["counts"]["without_mask"] == 1
        finally:
            await client.close()
        writer = app[HISTORY].writer
        assert writer is not None
        await client.wait_for(lambda: writer.written >= 1, 10.0, "the passage to be written")
        status, body = await get(http, f"{base}/api/passages")
        assert status == 200
        (passage,) = body["passages"]
        assert passage["location"] == "Main entrance" and passage["label"] == "without_mask"
        assert passage["confidence"] == 1.0 and passage["seconds"] > 0.2 and passage["frames"] >= 10
        assert passage["size"] == "large" and passage["label_changed"] is False
        assert tuple(passage) == CSV_FIELDS
        status, metrics = await get(http, f"{base}/metrics")
        assert 'maskcam_passages_total{label="without_mask",location="Main entrance"} 1.0' in metrics
        assert "maskcam_passages_dropped_total 0.0" in metrics
        status, live = await get(http, f"{base}/api/live")
        assert live["cameras"] == []


async def test_an_offer_with_a_bad_location_is_refused(http: aiohttp.ClientSession) -> None:
    app = create_app(BASE, source_factory=stand_in)
    async with serve_app(app) as base:
        for bad in ("x" * 65, "<script>", 12, "_hidden"):
            offer = {"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer", "location": bad}
            async with http.post(f"{base}/offer", json=offer) as response:
                assert response.status == 400
                assert (await response.json())["reason"] == "bad_location"


async def test_filters_csv_and_summary(http: aiohttp.ClientSession, filled: str) -> None:
    app = create_app(replace(BASE, history=filled), source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, f"{base}/api/passages", params={"tz": "UTC"})
        assert status == 200 and body["tz"] == "UTC"
        assert [p["label"] for p in body["passages"]] == [
            "mask_worn_incorrectly",
            "without_mask",
            "with_mask",
        ]
        assert body["passages"][-1]["time"] == "2026-05-28T20:30:00.000+00:00"
        assert body["truncated"] is False
        params = {"location": "Main entrance", "since": "2026-05-28T21:00:00Z", "limit": "5"}
        status, body = await get(http, f"{base}/api/passages", params=params)
        assert [p["label"] for p in body["passages"]] == ["without_mask"]
        # A limit that cuts the answer says so, in the JSON and in a header of both routes.
        status, body = await get(http, f"{base}/api/passages", params={"limit": "2"})
        assert len(body["passages"]) == 2 and body["truncated"] is True
        for route, limit, cut in (("/api/passages.csv", "2", "true"), ("/api/passages.csv", "3", "false")):
            async with http.get(f"{base}{route}", params={"limit": limit}) as response:
                assert response.headers["X-Maskcam-Truncated"] == cut, limit
                assert len(list(csv.DictReader(io.StringIO(await response.text())))) == min(3, int(limit))
        status, text = await get(http, f"{base}/api/passages.csv", params={"tz": "Europe/Paris"})
        rows = list(csv.DictReader(io.StringIO(text)))
        assert status == 200 and len(rows) == 3
        assert rows[0]["location"] == "Side door" and rows[2]["time"] == "2026-05-28T22:30:00.000+02:00"
        status, body = await get(http, f"{base}/api/summary", params={"bucket": "day", "tz": "Europe/Paris"})
        assert status == 200 and body["tz"] == "Europe/Paris"
        assert body["buckets"] == [
            {
                "start": "2026-05-28T00:00:00+02:00",
                "location": "Main entrance",
                "with_mask": 1,
                "without_mask": 1,
                "mask_worn_incorrectly": 0,
            },
            {
                "start": "2026-05-29T00:00:00+02:00",
                "location": "Side door",
                "with_mask": 0,
                "without_mask": 0,
                "mask_worn_incorrectly": 1,
            },
        ]
        status, body = await get(
            http, f"{base}/api/summary", params={"tz": "UTC", "location": "Main entrance"}
        )
        assert [b["start"] for b in body["buckets"]] == [
            "2026-05-28T20:00:00+00:00",
            "2026-05-28T21:00:00+00:00",
        ]


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/passages", {"since": "yesterday"}, "ISO-8601"),
        ("/api/passages", {"until": "2026-13-01"}, "ISO-8601"),
        ("/api/passages", {"since": "2026-05-02", "until": "2026-05-01"}, "later"),
        ("/api/passages", {"limit": "0"}, "limit"),
        ("/api/passages", {"limit": "10001"}, "limit"),
        ("/api/passages", {"limit": "ten"}, "limit"),
        ("/api/passages.csv", {"tz": "Mars/Olympus"}, "time zone"),
        ("/api/passages", {"location": "y" * 65}, "longer"),
        ("/api/summary", {"bucket": "week"}, "bucket"),
        ("/api/summary", {"location": "a;b"}, "letters"),
    ],
)
async def test_bad_parameters_get_a_400_that_says_why(
    http: aiohttp.ClientSession, history_file: str, path: str, params: dict[str, str], message: str
) -> None:
    app = create_app(replace(BASE, history=history_file), source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, base + path, params=params)
        assert status == 400 and body["reason"] == "bad_query"
        assert message in body["error"]


async def test_counts_mode_has_summaries_but_no_rows(http: aiohttp.ClientSession, history_file: str) -> None:
    store = HistoryStore(history_file, "counts")
    store.open()
    store.write("b", [record(T0), record(T0 + 1000, label="without_mask")])
    store.close()
    app = create_app(replace(BASE, history=history_file, history_detail="counts"), source_factory=stand_in)
    async with serve_app(app) as base:
        for path in ("/api/passages", "/api/passages.csv"):
            status, body = await get(http, base + path)
            assert status == 409 and body["reason"] == "counts_only" and "/api/summary" in body["error"]
        status, body = await get(http, f"{base}/api/summary", params={"tz": "UTC"})
        assert status == 200
        assert body["buckets"] == [
            {
                "start": "2026-05-28T20:00:00+00:00",
                "location": "Main entrance",
                "with_mask": 1,
                "without_mask": 1,
                "mask_worn_incorrectly": 0,
            }
        ]


async def test_without_history_the_api_says_so_and_live_still_works(http: aiohttp.ClientSession) -> None:
    app = create_app(BASE, source_factory=stand_in)
    async with serve_app(app) as base:
        status, body = await get(http, f"{base}/api/summary")
        assert status == 409 and body["reason"] == "history_off"
        status, body = await get(http, f"{base}/api/live")
        assert status == 200 and body["cameras"] == []


async def test_the_admin_token_guards_the_api_and_the_camera_token_does_not_open_it(
    http: aiohttp.ClientSession, filled: str
) -> None:
    config = replace(BASE, history=filled, token="camera-secret", admin_token="admin-secret")
    app = create_app(config, source_factory=stand_in)
    async with serve_app(app) as base:
        url = f"{base}/api/passages"
        assert (await get(http, url))[0] == 401
        assert (await get(http, url, params={"token": "camera-secret"}))[0] == 401
        assert (await get(http, url, headers={"Authorization": "Bearer camera-secret"}))[0] == 401
        status, body = await get(http, url, headers={"Authorization": "Bearer admin-secret"})
        assert status == 200 and len(body["passages"]) == 3
        # The admin token opens /api/* and what the dashboard reads (its files, /config), not the cameras'
        # routes: those still want the camera token.
        for camera_route in ("/kiosk", "/today", "/metrics"):
            answer = await get(http, base + camera_route, headers={"Authorization": "Bearer admin-secret"})
            assert answer[0] == 401, camera_route
        assert (await get(http, f"{base}/config", headers={"Authorization": "Bearer admin-secret"}))[0] == 200
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(f"{base}/api/live", params={"token": "admin-secret"}) as response:
                assert response.status == 200
                assert ADMIN_COOKIE in response.cookies and response.cookies[ADMIN_COOKIE]["httponly"]
            async with browser.get(f"{base}/api/summary") as response:
                assert response.status == 200, "the cookie set by ?token= opens the other routes"


@contextlib.asynccontextmanager
async def on_every_interface(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` on 0.0.0.0 (reachable through loopback and the machine's own address); yields the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_without_an_admin_token_only_this_machine_is_answered(filled: str) -> None:
    app = create_app(replace(BASE, history=filled), source_factory=stand_in)
    async with on_every_interface(app) as port, aiohttp.ClientSession() as http:
        assert (await get(http, f"http://127.0.0.1:{port}/api/live"))[0] == 200
        # The same server through the machine's own network address: not a loopback client.
        address = non_loopback_address()
        status, body = await get(http, f"http://{address}:{port}/api/live")
        assert status == 403 and "--admin-token" in body["error"]
        assert (await get(http, f"http://{address}:{port}/healthz"))[0] in (200, 503)


def non_loopback_address() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no network address besides loopback")
    return address


def test_the_store_reads_the_servers_rows(filled: str) -> None:
    store = HistoryStore(filled)
    store.open()
    assert len(store.passages(PassageQuery())) == 3
    store.close()


async def test_a_restarted_server_still_has_its_history(http: aiohttp.ClientSession, filled: str) -> None:
    for _ in range(2):
        app = create_app(replace(BASE, history=filled), source_factory=stand_in)
        async with serve_app(app) as base:
            status, body = await get(http, f"{base}/api/passages")
            assert status == 200 and len(body["passages"]) == 3


def test_run_server_refuses_a_history_of_a_newer_schema(filled: str, tmp_path: Path) -> None:
    store = HistoryStore(filled)
    with store.engine.begin() as connection:
        connection.execute(sa.update(schema_table).values(version=SCHEMA_VERSION + 1))
    store.close()
    command = [sys.executable, "run_server.py", "--port", "0", "--history", filled]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stderr[-2000:]
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this server's {SCHEMA_VERSION}" in result.stderr
    unwritable = tmp_path / "file"
    unwritable.write_text("")
    command[-1] = str(unwritable / "history.sqlite3")  # its folder would have to be a file
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 5 and "history" in result.stderr, result.stderr[-2000:]


def test_the_passages_metric_keeps_at_most_64_locations_and_counts_the_rest_as_other() -> None:
    """Locations come from clients: the metric's series must stay bounded whatever they send."""
    metrics = ServerMetrics()
    face = Detection(box=(100, 100, 200, 220), label="with_mask", score=0.9, face_confidence=0.9)
    for index in range(MAX_LOCATION_LABELS + 6):
        session = SessionPassages(f"Door {index}", PassageRule(), None, metrics)
        start = time.monotonic()
        for frame in range(3):
            session.observe(start + frame * 0.1, [face])
        session.finish()
    session = SessionPassages("Door 0", PassageRule(), None, metrics)  # known: keeps its own series
    for _ in range(3):
        session.observe(time.monotonic(), [face])
    session.finish()
    text = metrics.render().decode()
    series = [line for line in text.splitlines() if line.startswith("maskcam_passages_total{")]
    locations = {line.split('location="')[1].split('"')[0] for line in series}
    assert len(locations) == MAX_LOCATION_LABELS + 1
    assert OTHER_LOCATION in locations and "Door 64" not in locations
    assert 'maskcam_passages_total{label="with_mask",location="other"} 6.0' in series
    assert 'maskcam_passages_total{label="with_mask",location="Door 0"} 2.0' in series


class _BrokenWorker(AnalysisWorker):
    """A worker whose release fails: something in a session's close path raising."""

    def close(self, session_id: str) -> None:
        raise RuntimeError("worker release failed")


async def test_a_failing_close_still_hands_the_open_passages_to_the_history() -> None:
    metrics = ServerMetrics()
    written: list[PassageRecord] = []

    class Sink:
        def submit(self, item: PassageRecord) -> bool:
            written.append(item)
            return True

    passages = SessionPassages("Main entrance", PassageRule(), Sink(), metrics)
    closed: list[PeerSession] = []
    session = PeerSession(
        "s1", (), _BrokenWorker(SlowAnalyser(0.0), metrics), metrics, 30.0, closed.append, passages=passages
    )
    face = Detection(box=(100, 100, 200, 220), label="with_mask", score=0.9, face_confidence=0.9)
    for _ in range(3):
        passages.observe(time.monotonic(), [face])
    assert written == [], "the passage is still open"
    with pytest.raises(RuntimeError, match="worker release failed"):
        await session.close("hangup")
    assert [(r.location, r.label, r.frames) for r in written] == [("Main entrance", "with_mask", 3)]
    assert closed == [session], "and the session left the registry"
