"""The one place that turns the settings into sinks: `--mqtt` gives the MQTT sink, each `--webhook` a
webhook sink (`webhook-1`, `webhook-2`, ... in the order given)."""

from __future__ import annotations

from server.events.mqtt import MqttSink
from server.events.sink import EventSink
from server.events.topics import Topics
from server.events.webhook import WebhookSink
from server.settings import ServerConfig


def make_sinks(config: ServerConfig) -> list[EventSink]:
    """The configured sinks (none by default); the settings checked their values already."""
    sinks: list[EventSink] = []
    if config.mqtt is not None:
        topics = Topics(config.mqtt_prefix, config.mqtt_discovery_prefix)
        sinks.append(
            MqttSink(
                config.mqtt,
                topics,
                ca_file=config.mqtt_ca,
                include_today=config.history is not None,
            )
        )
    for number, url in enumerate(config.webhook, start=1):
        sinks.append(WebhookSink(f"webhook-{number}", url, config.webhook_secret))
    return sinks
