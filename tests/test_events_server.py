"""Events through the real server: an aiortc camera of real faces, a real Mosquitto, a real webhook
receiver and a real PostgreSQL, each stopped mid-stream; the server restarted during the outages.

The faces: the masked and the unmasked photo side by side for a second, then an empty scene for a
second, over and over: two passages (with_mask, without_mask) per round, found by the real models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.analysis.analyser import AnalyserSource
from server.analysis.models import load_models
from server.app import create_app
from server.events.service import EVENTS
from server.history.service import HISTORY
from server.settings import PROJECT_ROOT, ServerConfig, parse_mqtt_url
from tests.media_helpers import CameraClient, FakeCameraTrack, blank_frame, serve_app, two_face_frame
from tests.mqtt_helpers import Broker, Subscriber, retained
from tests.postgres_helpers import PostgresCluster, free_port
from tests.webhook_helpers import Receiver, ReceiverThread

HA_SENSOR_KEYS = {
    "name", "unique_id", "object_id", "state_topic", "value_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "unit_of_measurement", "state_class",
    "device_class", "options",
}  # fmt: skip
"""Home Assistant's MQTT sensor schema (full names) for what these configs use."""
HA_DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model"}
LOCATION = "Gate 1"
ROUND = [0] * 30 + [1] * 30
"""One second of both faces, one of nobody, at 30 fps."""


@pytest.fixture(scope="module")
def models() -> AnalyserSource:
    return load_models(ServerConfig())


def config(tmp_path: Path, **changes: Any) -> ServerConfig:
    base = ServerConfig(
        offers_per_minute=0,
        idle_timeout=5.0,
        passage_gap=0.3,
        passage_min_frames=3,
        history=str(tmp_path / "history.sqlite3"),
        spool=tmp_path / "spool.sqlite3",
    )
    return replace(base, **changes)


def camera() -> CameraClient:
    scene = two_face_frame()
    return CameraClient(FakeCameraTrack([scene.image, blank_frame()], order=ROUND))


def finished(app: web.Application) -> int:
    return sum(p.finished for p in app[HISTORY].live)


def counted(app: web.Application) -> int:
    """Every passage this server finished (maskcam_passages_total), whatever became of it."""
    metric = app[HISTORY].metrics.passages
    return round(sum(s.value for m in metric.collect() for s in m.samples if s.name.endswith("_total")))


async def stored_uids(
    http: aiohttp.ClientSession, base: str, app: web.Application | None = None
) -> list[str]:
    """The uids of /api/passages; with `app`, once its writer has written every passage it was given."""
    writer = app[HISTORY].writer if app is not None else None
    if writer is not None:
        assert await asyncio.to_thread(writer.flush, 20), "passages still unwritten"
    async with http.get(f"{base}/api/passages", params={"limit": "10000"}) as response:
        body = await response.json()
    return [passage["uid"] for passage in body["passages"]]


class Servers:
    """Real servers of this test on the real models, started and stopped (restarted) as the test says."""

    def __init__(self, models: AnalyserSource) -> None:
        self.models = models
        self.running: dict[int, contextlib.AbstractAsyncContextManager[str]] = {}

    async def start(self, settings: ServerConfig) -> tuple[web.Application, str]:
        app = create_app(settings, source_factory=lambda _: self.models)
        served = serve_app(app)
        base = await served.__aenter__()
        self.running[id(app)] = served
        return app, base

    async def stop(self, app: web.Application) -> None:
        await self.running.pop(id(app)).__aexit__(None, None, None)


@pytest.fixture
async def servers(models: AnalyserSource) -> AsyncIterator[Servers]:
    started = Servers(models)
    yield started
    for served in list(started.running.values()):
        await served.__aexit__(None, None, None)


async def film(
    http: aiohttp.ClientSession, app: web.Application, base: str, passages: int, what: str
) -> None:
    """A camera at LOCATION until `passages` more passages have finished; then it hangs up and its session
    ends."""
    client = camera()
    try:
        await client.connect(http, base, location=LOCATION)
        await stream_until(client, app, passages, what)
    finally:
        await client.close()
    await client.wait_for(lambda: not app[HISTORY].live, 10.0, "the session to end")


async def stream_until(client: CameraClient, app: web.Application, passages: int, what: str) -> None:
    target = finished(app) + passages
    await client.wait_for(lambda: finished(app) >= target, 60.0, what)


async def test_passages_states_counts_and_discovery_reach_mosquitto(
    http: aiohttp.ClientSession, broker: Broker, servers: Servers, tmp_path: Path
) -> None:
    listener = Subscriber(broker, ("maskcam/#", "homeassistant/#")).start()
    app, base = await servers.start(config(tmp_path, mqtt=parse_mqtt_url(broker.url)))
    await film(http, app, base, 4, "four passages")
    uids = await stored_uids(http, base, app)
    assert len(uids) >= 4
    await asyncio.to_thread(
        listener.wait_for,
        lambda: {m.json()["uid"] for m in listener.on("maskcam/passages")} >= set(uids),
        20,
        "every stored passage on maskcam/passages",
    )
    received = [m.json() for m in listener.on("maskcam/passages")]
    assert {p["uid"] for p in received} == set(uids)
    async with http.get(f"{base}/api/passages", params={"limit": "10000"}) as response:
        rows = {p["uid"]: p for p in (await response.json())["passages"]}
    for passage in received:
        row = rows[passage["uid"]]
        assert {k: passage[k] for k in row} == row  # the same fields and values as /api/passages
        assert set(passage) == set(row) | {"start_ms"}  # and nothing more than its start time
    assert {p["label"] for p in received} == {"with_mask", "without_mask"}
    kept = await asyncio.to_thread(retained, broker, "#")
    assert kept["maskcam/status"] == b"online"
    state = json.loads(kept["maskcam/gate_1/state"])
    assert state["location"] == LOCATION and state["verdict"] == "none" and state["faces"] == 0
    states = [m.json()["verdict"] for m in listener.on("maskcam/gate_1/state")]
    assert "unmasked" in states and "none" in states
    today = json.loads(kept["maskcam/gate_1/today"])
    assert today["people"] == len(uids) and today["location"] == LOCATION
    assert today["with_mask"] + today["without_mask"] + today["mask_worn_incorrectly"] == today["people"]
    configs = {t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/")}
    assert len(configs) == 7
    for topic, config_body in configs.items():
        assert topic.startswith("homeassistant/sensor/maskcam_gate_1/") and topic.endswith("/config")
        assert set(config_body) <= HA_SENSOR_KEYS and set(config_body["device"]) <= HA_DEVICE_KEYS
        assert config_body["state_topic"] in kept  # every sensor reads a topic that holds a value now
        assert config_body["availability_topic"] == "maskcam/status"
    async with http.get(f"{base}/healthz") as response:
        health = await response.json()
    assert health["sinks"] == [{"name": "mqtt", "connected": True, "queued": 0}]
    async with http.get(f"{base}/metrics") as response:
        metrics = await response.text()
    assert f'maskcam_events_delivered_total{{sink="mqtt"}} {float(len(uids))}' in metrics
    assert 'maskcam_events_connected{sink="mqtt"} 1.0' in metrics
    listener.stop()


async def test_the_broker_stopped_mid_stream_and_the_server_restarted_while_it_is_down(
    http: aiohttp.ClientSession, broker: Broker, servers: Servers, tmp_path: Path
) -> None:
    listener = Subscriber(broker, ("maskcam/passages",)).start()
    settings = config(tmp_path, mqtt=parse_mqtt_url(broker.url))
    app, base = await servers.start(settings)
    client = camera()
    try:
        await client.connect(http, base, location=LOCATION)
        await stream_until(client, app, 2, "passages before the outage")
        await asyncio.to_thread(broker.stop)
        down = time.monotonic()
        await stream_until(client, app, 2, "passages while the broker is down")
        await asyncio.sleep(max(0.0, 10.0 - (time.monotonic() - down)))
        await asyncio.to_thread(broker.start)  # after 10 s
        await stream_until(client, app, 2, "passages after the outage")
        await asyncio.to_thread(broker.stop)  # down again, and the server restarts meanwhile
        await stream_until(client, app, 2, "passages before the restart")
    finally:
        await client.close()
    await client.wait_for(lambda: not app[HISTORY].live, 10.0, "the session to end")
    await servers.stop(app)
    app, base = await servers.start(settings)
    await asyncio.sleep(1.0)
    status = app[EVENTS].statuses()[0]
    assert not status.connected and status.queued >= 2  # what waited survived the restart
    await asyncio.to_thread(broker.start)
    uids = set(await stored_uids(http, base))
    assert len(uids) >= 8
    await asyncio.to_thread(
        listener.wait_for,
        lambda: {m.json()["uid"] for m in listener.on("maskcam/passages")} >= uids,
        40,
        "every stored passage on maskcam/passages once both are back",
    )
    received = [m.json()["uid"] for m in listener.on("maskcam/passages")]
    assert set(received) == uids  # duplicates, if any, only with the same uid
    listener.stop()


async def test_a_webhook_that_fails_for_a_while_gets_every_passage_signed(
    http: aiohttp.ClientSession, servers: Servers, tmp_path: Path
) -> None:
    receiver = Receiver(secret="s3cret", failing=True)
    # On a loop of its own, as a receiver elsewhere would be: the server's work never delays its answers.
    served = ReceiverThread(receiver)
    try:
        hook = f"http://127.0.0.1:{served.port}/hook"
        settings = config(tmp_path, webhook=(hook,), webhook_secret="s3cret")
        app, base = await servers.start(settings)
        client = camera()
        try:
            await client.connect(http, base, location=LOCATION)
            await stream_until(client, app, 4, "passages while the receiver answers 500")
            await client.wait_for(lambda: receiver.attempts >= 2, 20.0, "refused deliveries")
            assert receiver.accepted == []
            receiver.failing = False
            await stream_until(client, app, 2, "passages once it answers 200")
        finally:
            await client.close()
        await client.wait_for(lambda: not app[HISTORY].live, 10.0, "the session to end")
        uids = set(await stored_uids(http, base, app))
        await client.wait_for(lambda: set(receiver.uids) >= uids, 60.0, "every passage delivered")
        assert set(receiver.uids) == uids and receiver.refused_signatures == 0
        async with http.get(f"{base}/api/sinks") as response:
            sinks = (await response.json())["sinks"]
        assert sinks[0]["name"] == "webhook-1" and sinks[0]["delivered"] >= len(uids)
        assert sinks[0]["connected"] is True and sinks[0]["queued"] == 0
    finally:
        served.stop()


async def test_postgresql_stopped_mid_stream_and_the_server_restarted_during_the_outage(
    http: aiohttp.ClientSession,
    postgres: PostgresCluster,
    postgres_url: str,
    servers: Servers,
    tmp_path: Path,
) -> None:
    settings = config(tmp_path, history=postgres_url)
    app, base = await servers.start(settings)
    client = camera()
    try:
        await client.connect(http, base, location=LOCATION)
        await stream_until(client, app, 2, "passages before the outage")
        await asyncio.to_thread(postgres.stop)
        try:
            await stream_until(client, app, 2, "passages while the database is down")
        finally:
            await client.close()
        await client.wait_for(lambda: not app[HISTORY].live, 10.0, "the session to end")
        first = counted(app)
        before = app[HISTORY].writer
        await servers.stop(app)  # the server restarts while the database is down
        assert before is not None and before.written < first and before.dropped == 0
        app, base = await servers.start(settings)
        await film(http, app, base, 2, "passages after the restart, the database still down")
    finally:
        await asyncio.to_thread(postgres.start)
    writer = app[HISTORY].writer
    assert writer is not None
    assert await asyncio.to_thread(writer.flush, 40), "the spooled passages written once it is back"
    assert writer.dropped == 0
    uids = await stored_uids(http, base)
    # Every passage of both runs stored, none twice.
    assert len(uids) == len(set(uids)) == first + counted(app)


def test_the_will_says_offline_when_the_server_is_killed(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run_server.py"), f"--port={port}", "--no-history",
         f"--mqtt={broker.url}", "--mqtt-prefix=site1/maskcam"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while retained(broker, "site1/maskcam/status", settle=0.5).get("site1/maskcam/status") != b"online":
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the server never said online"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        deadline = time.monotonic() + 10
        while retained(broker, "site1/maskcam/status", settle=0.3).get("site1/maskcam/status") != b"offline":
            assert time.monotonic() < deadline, "the broker did not publish the will"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
