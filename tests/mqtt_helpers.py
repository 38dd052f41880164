"""A real Mosquitto broker for the events tests (Debian's `mosquitto`), on a free loopback port, started and
stopped by the test; and a subscriber that records what arrives.

`.ci/run` installs the package; without it the tests that need a broker skip and say why, unless
`MASKCAM_REQUIRE_MQTT=1` (which `.ci/run` sets): then they fail, so that CI cannot pass with the MQTT
tests silently skipped. The broker persists its queues (`persistence true`), so a subscriber's QoS 1
messages survive a broker restart, as in a building's installation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.postgres_helpers import free_port

REQUIRE_ENV = "MASKCAM_REQUIRE_MQTT"
MOSQUITTO = "/usr/sbin/mosquitto"


def mosquitto_missing(environ: Mapping[str, str]) -> None:
    message = "Mosquitto is not installed (Debian's mosquitto package; .ci/run installs it)"
    if environ.get(REQUIRE_ENV, "").strip() == "1":
        pytest.fail(f"{message}, and {REQUIRE_ENV}=1 requires the MQTT tests to run")
    pytest.skip(message)


@dataclass
class Broker:
    """One Mosquitto in a temporary folder; `stop()`/`start()` mid-test keep its port and its data."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.directory / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.directory}/\nlog_dest file {self.directory}/log\n"
        )
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def log(self) -> str:
        path = self.directory / "log"
        return path.read_text(errors="replace")[-2000:] if path.is_file() else ""

    def _listening(self) -> bool:
        import socket

        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0


def start_broker() -> Broker:
    if not Path(MOSQUITTO).is_file():
        mosquitto_missing(os.environ)
    broker = Broker(directory=Path(tempfile.mkdtemp(prefix="maskcam-mqtt-")), port=free_port())
    broker.start()
    return broker


def remove_broker(broker: Broker) -> None:
    broker.stop()
    shutil.rmtree(broker.directory, ignore_errors=True)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A QoS 1 subscriber with a persistent session (clean_session=False): what the broker queued for it
    while it, or the broker, was away still arrives."""

    broker: Broker
    topics: tuple[str, ...]
    client_id: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 1)

    def start(self) -> Subscriber:
        self._client.connect_async("127.0.0.1", self.broker.port, keepalive=10)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, *_: object) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def topics_seen(self) -> set[str]:
        with self._lock:
            return {m.topic for m in self.messages}

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; log: {self.broker.log()}"
                )
            time.sleep(0.05)


def retained(broker: Broker, pattern: str, settle: float = 1.0) -> dict[str, bytes]:
    """What the broker retains under `pattern` now, as a subscriber that comes later sees it."""
    found: dict[str, bytes] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            found[message.topic] = bytes(message.payload)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(pattern, qos=1)
    client.connect("127.0.0.1", broker.port, keepalive=10)
    client.loop_start()
    time.sleep(settle)
    client.disconnect()
    client.loop_stop()
    return found
