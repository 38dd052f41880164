"""Several instances behind a real balancer: three `run_server.py` processes sharing one real PostgreSQL
history, Debian's nginx configured from deploy/nginx/maskcam.conf (the file docs/DEPLOY.md includes), and
aiortc cameras of real faces that connect through nginx and reconnect by themselves as the page does.

Skipped where nginx or PostgreSQL is missing, unless MASKCAM_REQUIRE_DEPLOY=1 (.ci/run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from tests.browser_helpers import free_port
from tests.container_helpers import deploy_tool_missing
from tests.media_helpers import CameraClient, FakeCameraTrack, blank_frame, two_face_frame
from tests.postgres_helpers import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]
NGINX_EXAMPLE = ROOT / "deploy" / "nginx" / "maskcam.conf"
CONNECTION_JS = ROOT / "static" / "js" / "connection.js"
RETRY_JS = ROOT / "static" / "js" / "retry.js"
INSTANCES = 3
MAX_SESSIONS = 2
CAMERA_FPS = 10
SCENE = [0] * 25 + [1] * 25  # 2.5 s with two faces, 2.5 s without: one passage per face and period
RECONNECT_LIMIT_S = 10.0


def page_constant(name: str, source: Path = CONNECTION_JS) -> list[int]:
    """A timing of the page's reconnect logic (a number or a list of them), read from the page's own
    modules so that the test's cameras keep behaving as the page does."""
    match = re.search(rf"^(?:export )?const {name} = \[?([\d, ]+)", source.read_text(), re.MULTILINE)
    assert match, f"{name} not in {source}"
    return [int(value) for value in match[1].split(",") if value.strip()]


# A browser sees a killed server as ICE `disconnected` and gives it DISCONNECTED_GRACE_MS; an aiortc peer
# has no such state for seconds (its consent checks take 30 s), so these cameras take DISCONNECTED_GRACE_MS
# of data-channel silence (they ping once a second, as the page does) for the same signal.
LOST_AFTER_S = page_constant("DISCONNECTED_GRACE_MS")[0] / 1000
RETRY_STEPS_S = [step / 1000 for step in page_constant("RETRY_STEPS_MS", RETRY_JS)]
PING_INTERVAL_S = page_constant("PING_INTERVAL_MS")[0] / 1000


def nginx_config(example: str, instances: Sequence[str], port: int, cert: Path, key: Path) -> str:
    """deploy/nginx/maskcam.conf with the test's instances, port and certificate in place of the
    example's: nothing else changes."""
    servers = iter(instances)
    text, count = re.subn(
        r"(?m)^(\s*server )10\.0\.0\.\d+:8080( .*;)$", lambda m: m[1] + next(servers) + m[2], example
    )
    assert count == len(instances), "the example's upstream no longer lists one server line per instance"
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
        "/etc/ssl/cameras.crt;": f"{cert};",
        "/etc/ssl/cameras.key;": f"{key};",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


NGINX_MAIN = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_uri $status [$upstream_addr] [$upstream_status]';
    access_log {dir}/access.log upstreams;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    include {dir}/maskcam.conf;
}}
"""


@contextlib.contextmanager
def running_nginx(directory: Path, instances: Sequence[str]) -> Iterator[str]:
    """Debian's nginx with the example configuration; yields its https base URL."""
    directory.mkdir()
    cert, key = directory / "test.crt", directory / "test.key"
    openssl = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    subprocess.run(
        [*openssl, "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    (directory / "maskcam.conf").write_text(
        nginx_config(NGINX_EXAMPLE.read_text(), instances, port, cert, key)
    )
    (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory))
    command = ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Instance:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@contextlib.contextmanager
def running_instances(directory: Path, history_url: str) -> Iterator[list[Instance]]:
    instances = []
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MASKCAM_")}
    try:
        for number in range(INSTANCES):
            port, log = free_port(), directory / f"instance{number}.log"
            command = [sys.executable, "run_server.py", "--host", "127.0.0.1", "--port", str(port)]
            command += ["--history", history_url, "--max-sessions", str(MAX_SESSIONS)]
            command += ["--offers-per-minute", "0", "--log-format", "json"]  # rate limit: in nginx
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
                )
            instances.append(Instance(port, process, log))
        yield instances
    finally:
        for instance in instances:
            if instance.process.poll() is None:
                instance.process.kill()
            instance.process.wait(timeout=30)


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
        return response.status, await response.json(content_type=None)


async def wait_until_healthy(http: aiohttp.ClientSession, urls: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                if (await get_json(http, f"{url}/healthz"))[0] == 200:
                    break
            assert time.monotonic() < deadline, f"{url} not healthy after {timeout} s"
            await asyncio.sleep(1.0)


@dataclass
class Connection:
    session: str
    offered_at: float
    answered_at: float
    first_message_at: float | None = None


@dataclass
class KioskCamera:
    """A camera that stays connected through the balancer as the kiosk page does (static/js/connection.js):
    a ping every second on the data channel, lost after LOST_AFTER_S of silence, a new offer after the
    page's first backoff (with its jitter). Each connection is a real aiortc peer showing real faces."""

    http: aiohttp.ClientSession
    base_url: str
    location: str
    images: Sequence[Any]
    connections: list[Connection] = field(default_factory=list)
    lost_at: list[float] = field(default_factory=list)
    client: CameraClient | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self.client is not None:
            await self.client.close()

    async def connected(self, sessions: int, timeout: float) -> None:
        """Until `sessions` connections have carried a detection message."""
        deadline = time.monotonic() + timeout
        while sum(1 for c in self.connections if c.first_message_at is not None) < sessions:
            assert self._task is not None and not self._task.done(), "the camera gave up"
            assert time.monotonic() < deadline, f"{self.location}: connection {sessions} never came up"
            await asyncio.sleep(0.1)

    async def _run(self) -> None:
        attempt = 0
        while True:
            if await self._connect_and_watch():
                attempt = 0
            # static/js/retry.js's retryDelay: the attempt's step, 50-100 % of it at random.
            step = RETRY_STEPS_S[min(attempt, len(RETRY_STEPS_S) - 1)]
            attempt += 1
            await asyncio.sleep(step * random.uniform(0.5, 1.0))

    async def _connect_and_watch(self) -> bool:
        """One connection until it is lost; whether it carried messages."""
        camera = FakeCameraTrack(self.images, fps=CAMERA_FPS, order=SCENE)
        self.client = client = CameraClient(camera, keep_frames=1)
        offered_at = time.monotonic()
        try:
            answer = await client.connect(self.http, self.base_url, location=self.location)
        except (AssertionError, aiohttp.ClientError, TimeoutError):
            await client.close()
            return False
        connection = Connection(answer["session"], offered_at, time.monotonic())
        self.connections.append(connection)
        heard = next_ping = time.monotonic()
        last_count, ping = 0, 0
        while time.monotonic() - heard < LOST_AFTER_S:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if len(client.messages) > last_count:
                heard, last_count = now, len(client.messages)
                if connection.first_message_at is None and any(
                    message.get("type") == "detections" for message in client.messages
                ):
                    connection.first_message_at = now
            if now >= next_ping and client.channel.readyState == "open":
                ping, next_ping = ping + 1, now + PING_INTERVAL_S
                client.channel.send(json.dumps({"type": "ping", "id": ping, "t": 0}))
        self.lost_at.append(time.monotonic())
        await client.close()
        return connection.first_message_at is not None


async def placement(http: aiohttp.ClientSession, instances: Sequence[Instance]) -> dict[str, dict[str, Any]]:
    """location -> that camera's entry in /api/live of the instance serving it, plus `instance`."""
    cameras: dict[str, dict[str, Any]] = {}
    for number, instance in enumerate(instances):
        if instance.process.poll() is not None:
            continue
        status, live = await get_json(http, f"{instance.url}/api/live")
        assert status == 200, live
        for camera in live["cameras"]:
            cameras[camera["location"]] = {**camera, "instance": number}
    return cameras


async def passages_metric(http: aiohttp.ClientSession, instance: Instance) -> dict[str, int]:
    """maskcam_passages_total of one instance, summed over labels, by location."""
    async with http.get(f"{instance.url}/metrics") as response:
        text = await response.text()
    totals: dict[str, int] = {}
    for labels, value in re.findall(r"^maskcam_passages_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        location = re.search(r'location="([^"]*)"', labels)
        assert location is not None
        totals[location[1]] = totals.get(location[1], 0) + round(float(value))
    return totals


def stored_passages(url: str) -> list[tuple[str, int, str, int]]:
    with psycopg.connect(url) as database:
        rows = database.execute("SELECT location, start_ms, label, frames FROM passages").fetchall()
    return [(str(a), int(b), str(c), int(d)) for a, b, c, d in rows]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        yield session


def test_deploy_md_shows_the_nginx_example_verbatim() -> None:
    """The operator's example and the tested configuration are one file; the docs include it whole."""
    doc = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert f"```nginx\n{NGINX_EXAMPLE.read_text()}```\n" in doc


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_cameras_spread_over_instances_retry_at_capacity_and_move_when_one_is_killed(
    tmp_path: Path, postgres: PostgresCluster, http: aiohttp.ClientSession
) -> None:
    if shutil.which("nginx") is None:
        deploy_tool_missing("nginx is not installed (Debian's nginx-light; .ci/run installs it)", os.environ)
    scene = two_face_frame()
    images = [scene.image, blank_frame()]
    history_url = postgres.create_database("balancer")
    cameras: list[KioskCamera] = []
    with (
        running_instances(tmp_path, history_url) as instances,
        running_nginx(tmp_path / "nginx", [instance.address for instance in instances]) as base_url,
    ):
        try:
            await wait_until_healthy(http, [*(i.url for i in instances), base_url], timeout=240)

            # Six cameras fill the three instances (2 each): spread over all of them by nginx.
            for number in range(INSTANCES * MAX_SESSIONS):
                camera = KioskCamera(http, base_url, f"Camera {number}", images)
                cameras.append(camera)
                camera.start()
                await camera.connected(1, timeout=60)
                if number == INSTANCES - 1:  # round robin among instances with no open request
                    where = await placement(http, instances)
                    assert sorted(c["instance"] for c in where.values()) == list(range(INSTANCES)), where
            where = await placement(http, instances)
            assert sorted(c["instance"] for c in where.values()) == [0, 0, 1, 1, 2, 2], where

            # A seventh offer: every instance answers 503 (at --max-sessions), nginx tries each one in
            # turn and then hands the 503 to the camera, which the page shows as "at capacity".
            overflow = CameraClient(FakeCameraTrack(images))
            with pytest.raises(AssertionError, match=r"answered 503: .*'reason': 'capacity'"):
                await overflow.connect(http, base_url)
            await overflow.close()
            access = (tmp_path / "nginx" / "access.log").read_text()
            [(tried, answers)] = re.findall(r"^/offer 503 \[([^]]*)\] \[([^]]*)\]$", access, re.MULTILINE)
            assert len(set(tried.split(", "))) >= 2, access  # not one instance: the next ones too
            assert set(answers.split(", ")) == {"503"}, access

            # Two cameras leave, leaving the four others and room for two on the survivors of a kill.
            for camera in cameras[-2:]:
                await camera.stop()
            cameras = cameras[:-2]
            await asyncio.sleep(2.0)
            where = await placement(http, instances)
            assert sorted(where) == sorted(camera.location for camera in cameras)
            counts = [sum(1 for c in where.values() if c["instance"] == n) for n in range(INSTANCES)]
            victim_number = counts.index(max(counts))
            victim = instances[victim_number]
            moved = [location for location, c in where.items() if c["instance"] == victim_number]

            # Let every camera finish passages, then SIGKILL the instance with the most cameras: two
            # snapshots of its /api/live, 1.5 s apart, and the kill right after the second.
            deadline = time.monotonic() + 90
            while min(c["passages"] for c in (await placement(http, instances)).values()) < 2:
                assert time.monotonic() < deadline, "cameras finished no passages (analysis starved?)"
                await asyncio.sleep(1.0)
            earlier = await placement(http, instances)
            await asyncio.sleep(1.5)
            last = await placement(http, instances)
            victim.process.send_signal(signal.SIGKILL)
            killed_at, killed_ms = time.monotonic(), time.time() * 1000
            victim.process.wait(timeout=30)

            # Its cameras notice, offer again through nginx, and are answered by the survivors.
            for camera in cameras:
                sessions = 2 if camera.location in moved else 1
                await camera.connected(sessions, timeout=RECONNECT_LIMIT_S + 20)
            reconnects = {}
            for camera in cameras:
                if camera.location in moved:
                    new = camera.connections[-1]
                    assert new.first_message_at is not None
                    reconnects[camera.location] = (
                        new.first_message_at - killed_at,
                        new.answered_at - new.offered_at,
                    )
                else:
                    assert len(camera.connections) == 1, f"{camera.location} was cut by the kill"
            after = await placement(http, instances)
            assert {after[location]["instance"] for location in moved} <= set(range(INSTANCES)) - {
                victim_number
            }

            # The history keeps filling: a moved camera's next passage is stored by its new instance.
            deadline = time.monotonic() + 60
            while not all(
                any(row[0] == location and row[1] > killed_ms for row in stored_passages(history_url))
                for location in moved
            ):
                assert time.monotonic() < deadline, "no passage stored for a moved camera after the kill"
                await asyncio.sleep(1.0)
        finally:
            for camera in cameras:
                await camera.stop()
        await asyncio.sleep(2.0)  # hang-ups end the open passages; the writers flush them
        survivors = [instance for instance in instances if instance is not victim]
        counted = [await passages_metric(http, instance) for instance in survivors]
        for instance in survivors:
            instance.process.send_signal(signal.SIGTERM)
            assert instance.process.wait(timeout=30) == 0

    rows = stored_passages(history_url)
    assert len(rows) == len(set(rows)), "a passage was stored twice"
    for location in where:
        before_kill = [row for row in rows if row[0] == location and row[1] < killed_ms]
        after_kill = [row for row in rows if row[0] == location and row[1] >= killed_ms]
        stored_by_survivors = sum(metric.get(location, 0) for metric in counted)
        if location not in moved:
            assert len(before_kill) + len(after_kill) == stored_by_survivors, location
            continue
        # Every passage of the killed instance that had ended 1.5 s before the kill is stored; at most
        # those open or ended in the last moment are lost.
        ended_before, ended_last, open_last = (
            earlier[location]["passages"],
            last[location]["passages"],
            last[location]["faces"],
        )
        assert ended_before <= len(before_kill) <= ended_last + open_last, (location, before_kill)
        assert len(after_kill) == stored_by_survivors, location
        lost = ended_last + open_last - len(before_kill)
        seconds, answer = reconnects[location]
        print(
            f"\n{location}: reconnected {seconds:.1f} s after the SIGKILL (offer answered in {answer:.2f} s);"
            f" {len(before_kill)} passages of the killed instance stored, {lost} lost"
            f" ({open_last} open at the kill, {ended_last - len(before_kill)} ended but not yet written)"
        )
        assert seconds < RECONNECT_LIMIT_S
