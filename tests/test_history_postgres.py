"""The history on a real PostgreSQL server through the real app: the database stopped mid-stream, and two
server instances writing into one database."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import aiohttp
import numpy as np
from aiohttp import web

from server.analysis.analyser import AnalyserSource
from server.app import STATE, create_app
from server.history.service import HISTORY
from server.history.store import HistoryStore, PassageQuery
from server.settings import ServerConfig
from tests.media_helpers import CameraClient, FakeCameraTrack, blank_frame, serve_app
from tests.postgres_helpers import PostgresCluster, free_port
from vision.pipeline import Detection

CONFIG = ServerConfig(offers_per_minute=0, idle_timeout=5.0, passage_gap=0.3, passage_min_frames=3)


class PassingFaces:
    """A stand-in analyser: a face for `present` frames, then none for `absent`, over and over: a person
    passing every (present + absent) frames."""

    def __init__(self, present: int = 8, absent: int = 20) -> None:
        self.present, self.absent = present, absent
        self.calls = 0

    def open_stream(self) -> PassingFaces:
        """Every camera shares it: the passing pattern counts all their frames together."""
        return self

    def analyse(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        time.sleep(0.002)
        if self.calls % (self.present + self.absent) >= self.present:
            return []
        return [Detection(box=(200, 120, 360, 320), label="with_mask", score=0.95, face_confidence=0.99)]


def passing_faces(_: ServerConfig) -> AnalyserSource:
    return PassingFaces()


def finished(app: web.Application) -> int:
    return sum(passages.finished for passages in app[HISTORY].live)


def rows(url: str, location: str | None = None) -> int:
    store = HistoryStore(url)
    try:
        return len(store.passages(PassageQuery(location=location, limit=10000)))
    finally:
        store.close()


async def test_the_database_stopped_mid_stream(
    http: aiohttp.ClientSession, postgres: PostgresCluster, postgres_url: str
) -> None:
    app = create_app(replace(CONFIG, history=postgres_url), source_factory=passing_faces)
    async with serve_app(app) as base:
        writer = app[HISTORY].writer
        assert writer is not None
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await client.connect(http, base, location="Gate 2")
            await client.wait_for(lambda: writer.written >= 2, 20.0, "two passages written")
            await asyncio.to_thread(postgres.stop)
            try:
                written_before, done_before = writer.written, finished(app)
                frames_before, messages_before = client.frames_received, len(client.messages)
                await client.wait_for(lambda: finished(app) >= done_before + 3, 20.0, "passages while down")
                # Video and analysis went on; nothing could be written.
                assert client.frames_received > frames_before + 30
                assert len(client.messages) > messages_before + 30
                assert writer.written == written_before and writer.pending >= 1
            finally:
                await asyncio.to_thread(postgres.start)
            target = finished(app)
            await client.wait_for(lambda: writer.written >= target, 30.0, "the waiting passages written")
        finally:
            await client.close()
        await client.wait_for(lambda: not app[STATE].registry.sessions(), 10.0, "the session to end")
        assert writer.flush(20)
        total = writer.written
        assert writer.dropped == 0 and total >= target
    # Every finished passage is there once: none lost while the database was down, none twice.
    assert await asyncio.to_thread(rows, postgres_url) == total


async def test_two_servers_share_one_history(http: aiohttp.ClientSession, postgres_url: str) -> None:
    first = create_app(replace(CONFIG, history=postgres_url), source_factory=passing_faces)
    second = create_app(replace(CONFIG, history=postgres_url), source_factory=passing_faces)
    async with serve_app(first) as base_one, serve_app(second) as base_two:
        cameras = [CameraClient(FakeCameraTrack([blank_frame()])) for _ in range(2)]
        try:
            await cameras[0].connect(http, base_one, location="North door")
            await cameras[1].connect(http, base_two, location="South door")
            for app in (first, second):
                writer = app[HISTORY].writer
                assert writer is not None
                await cameras[0].wait_for(lambda w=writer: w.written >= 2, 20.0, "passages from each server")  # type: ignore[misc]
        finally:
            for camera in cameras:
                await camera.close()
        # Either server's API reads what both wrote.
        for base in (base_one, base_two):
            async with http.get(f"{base}/api/passages") as response:
                body = await response.json()
            assert {p["location"] for p in body["passages"]} == {"North door", "South door"}
            async with http.get(f"{base}/api/summary", params={"bucket": "day"}) as response:
                summary = await response.json()
            assert {b["location"] for b in summary["buckets"]} == {"North door", "South door"}


async def test_a_database_down_at_start_neither_stops_the_server_nor_the_video(
    http: aiohttp.ClientSession,
) -> None:
    dead = f"postgresql://maskcam@127.0.0.1:{free_port()}/history"
    config = replace(CONFIG, history=dead, history_queue=2)
    app = create_app(config, source_factory=passing_faces)
    async with serve_app(app) as base:
        client = CameraClient(FakeCameraTrack([blank_frame()]))
        try:
            await client.connect(http, base, location="Gate 3")
            await client.wait_for(lambda: finished(app) >= 4, 20.0, "four passages")
        finally:
            await client.close()
        writer = app[HISTORY].writer
        assert writer is not None and writer.written == 0
        async with http.get(f"{base}/metrics") as response:
            metrics = await response.text()
        # The writer holds one batch and the queue two; the rest were dropped and counted.
        assert f"maskcam_passages_dropped_total {float(writer.dropped)}" in metrics and writer.dropped >= 1
        # Every read route says so, the dashboard's and the kiosk's too, and no answer is kept for later.
        for route in ("/api/passages", "/api/today", "/today", "/api/summary.csv", "/api/today"):
            async with http.get(f"{base}{route}") as response:
                assert response.status == 503, route
                assert (await response.json())["reason"] == "history_unavailable", route
