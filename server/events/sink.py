"""The seam of the events: a sink (MQTT, a webhook) and what the dashboard and /metrics see of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from server.events.messages import PassageEvent, Update


class DeliveryError(RuntimeError):
    """A delivery failed (not connected, refused, timed out): it stays in the spool and is retried."""


class EventSink(Protocol):
    """One destination. `deliver` blocks (its dispatcher thread calls it) and raises DeliveryError unless
    the destination acknowledged; `show` never blocks (the event loop calls it) and may be superseded."""

    name: str
    """The sink's spool channel and its label in /metrics: `mqtt`, `webhook-1`, ..."""
    description: str
    """Where it sends, for the dashboard and the logs, without a password."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def deliver(self, event: PassageEvent) -> None: ...

    def show(self, update: Update) -> None: ...

    def add_location(self, location: str) -> None:
        """A location got a camera: a sink that describes its devices (Home Assistant) does so now."""


@dataclass(frozen=True)
class SinkStatus:
    """One sink as `/api/sinks`, `/healthz` and the dashboard show it."""

    name: str
    description: str
    connected: bool
    queued: int
    delivered: int
    failures: int
    dropped: int
    last_delivery_ms: int | None
    last_error: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "target": self.description,
            "connected": self.connected,
            "queued": self.queued,
            "delivered": self.delivered,
            "failures": self.failures,
            "dropped": self.dropped,
            "lastDeliveryMs": self.last_delivery_ms,
            "lastError": self.last_error,
        }
