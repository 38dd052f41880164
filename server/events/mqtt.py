"""MQTT: passages (QoS 1), each location's live state and today's counts (retained), the server's status
(retained, and the connection's will), and Home Assistant discovery configs.

Client: paho-mqtt 2.x. Its network loop runs in a thread of its own (`loop_start`) and reconnects by
itself with a growing pause (`reconnect_delay_set`), so the event loop and the video never wait for the
broker: `show` only hands a message to paho (a non-blocking socket), and `deliver`, which waits for the
broker's PUBACK, runs in the sink's dispatcher thread. aiomqtt would put the client on the event loop
and leave the reconnect loop to us; paho's thread is the separation we want anyway.

A passage leaves the spool only once the broker acknowledged it; one sent again after a lost PUBACK
arrives twice with the same `uid` (at least once). Retained messages are the latest values only: they
are not spooled, but repeated on every (re)connection, with the discovery configs, which are sent again
when Home Assistant announces itself on `<discovery prefix>/status`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from server.events.messages import LiveState, PassageEvent, TodayCounts, Update
from server.events.sink import DeliveryError
from server.events.topics import OFFLINE, ONLINE, Topics, discovery_configs
from server.settings import MqttTarget

logger = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0
KEEPALIVE_S = 30
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
MAX_LOCATIONS = 64
"""Locations come from cameras: at most this many get retained topics and Home Assistant devices."""
QOS = 1


class MqttSink:
    name = "mqtt"

    def __init__(
        self,
        target: MqttTarget,
        topics: Topics,
        ca_file: Path | None = None,
        include_today: bool = True,
        ack_timeout: float = ACK_TIMEOUT_S,
    ) -> None:
        self.target = target
        self.topics = topics
        self.description = target.describe()
        self.include_today = include_today
        self._ack_timeout = ack_timeout
        self._lock = threading.Lock()
        self._locations: list[str] = []
        self._latest: dict[str, str] = {}
        self._told_full = False
        self._stopping = False
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"maskcam-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(ca_certs=str(ca_file) if ca_file is not None else None)
        client.will_set(topics.status, OFFLINE, qos=QOS, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(20)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected())

    def start(self) -> None:
        self._client.connect_async(self.target.host, self.target.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self) -> None:
        """Say `offline` (a clean shutdown sends no will) and close."""
        self._stopping = True
        if self.connected:
            info = self._client.publish(self.topics.status, OFFLINE, qos=QOS, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

    def deliver(self, event: PassageEvent) -> None:
        if not self.connected:
            raise DeliveryError("not connected to the broker")
        info = self._client.publish(self.topics.passages, event.to_json(), qos=QOS)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DeliveryError(mqtt.error_string(info.rc))
        try:
            info.wait_for_publish(self._ack_timeout)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(str(exc)) from None
        if not info.is_published():
            raise DeliveryError(f"no PUBACK within {self._ack_timeout:g} s")

    def add_location(self, location: str) -> None:
        with self._lock:
            if location in self._locations:
                return
            if len(self._locations) >= MAX_LOCATIONS:
                self._say_full(location)
                return
            self._locations.append(location)
        if self.connected:
            self._publish_all(discovery_configs(self.topics, location, self.include_today))

    def show(self, update: Update) -> None:
        """Retain the location's latest state or counts (and repeat it after a reconnection)."""
        if isinstance(update, LiveState):
            topic = self.topics.state(update.location)
        elif isinstance(update, TodayCounts):
            topic = self.topics.today(update.location)
        else:  # pragma: no cover - Update is closed
            raise TypeError(type(update).__name__)
        payload = update.to_json()
        with self._lock:
            if update.location not in self._locations:
                return
            self._latest[topic] = payload
        if self.connected:
            self._client.publish(topic, payload, qos=QOS, retain=True)

    def _say_full(self, location: str) -> None:
        if not self._told_full:
            self._told_full = True
            logger.warning(
                "mqtt: %d locations have retained topics already; %r and later ones get none",
                MAX_LOCATIONS,
                location,
            )

    def _announcements(self) -> list[tuple[str, str]]:
        with self._lock:
            locations = list(self._locations)
            latest = list(self._latest.items())
        configs = [
            config
            for location in locations
            for config in discovery_configs(self.topics, location, self.include_today)
        ]
        return [(self.topics.status, ONLINE), *configs, *latest]

    def _publish_all(self, messages: list[tuple[str, str]]) -> None:
        for topic, payload in messages:
            self._client.publish(topic, payload, qos=QOS, retain=True)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: mqtt.ReasonCode,
        _properties: mqtt.Properties | None,
    ) -> None:
        if reason.is_failure:
            logger.warning("mqtt: %s refused the connection: %s", self.description, reason)
            return
        logger.info("mqtt: connected to %s", self.description)
        client.subscribe(self.topics.discovery_status, qos=QOS)
        self._publish_all(self._announcements())

    def _on_disconnect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: mqtt.ReasonCode,
        _properties: mqtt.Properties | None,
    ) -> None:
        if self._stopping:
            logger.info("mqtt: disconnected from %s", self.description)
        else:
            logger.warning("mqtt: disconnected from %s (%s); reconnecting", self.description, reason)

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics.discovery_status and message.payload.strip() == ONLINE.encode():
            logger.info("mqtt: Home Assistant started; sending the discovery configs again")
            self._publish_all(self._announcements())
