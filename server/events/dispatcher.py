"""One thread per sink: takes the sink's passages from the spool, oldest first, delivers them one by one,
and removes each from the spool only once the sink acknowledged it.

A failed delivery is retried after a pause that doubles from `FIRST_PAUSE_S` up to `MAX_PAUSE_S`, and is
reset by a success. The thread also sleeps when the spool is empty, until `wake()` (a passage was stored)
or `IDLE_POLL_S`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from server.events.messages import PassageEvent
from server.events.sink import DeliveryError, EventSink, SinkStatus
from server.spool import Spool, SpoolError

logger = logging.getLogger(__name__)

FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 30.0
IDLE_POLL_S = 2.0
TAKE = 50
RECONNECT_CHECK_S = 0.25


class Dispatcher:
    def __init__(
        self,
        sink: EventSink,
        spool: Spool,
        on_delivered: Callable[[str], None] | None = None,
        max_pause: float = MAX_PAUSE_S,
    ) -> None:
        self.sink = sink
        self._spool = spool
        self._on_delivered = on_delivered
        self._max_pause = max_pause
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"events-{sink.name}", daemon=True)
        self.delivered = 0
        self.failures = 0
        """Failed attempts in a row (0 after a success)."""
        self.dropped = 0
        self.last_delivery: float | None = None
        self.last_error: str | None = None
        self._queued = 0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def status(self) -> SinkStatus:
        return SinkStatus(
            name=self.sink.name,
            description=self.sink.description,
            connected=self.sink.connected,
            queued=self._queued,
            delivered=self.delivered,
            failures=self.failures,
            dropped=self.dropped,
            last_delivery_ms=None if self.last_delivery is None else round(self.last_delivery * 1000),
            last_error=self.last_error,
        )

    def _run(self) -> None:
        pause = FIRST_PAUSE_S
        while not self._stopping.is_set():
            try:
                entries = self._spool.take(self.sink.name, TAKE)
                self._queued = self._spool.depth(self.sink.name)
            except SpoolError as exc:
                logger.error("events: %s: %s", self.sink.name, exc)
                self._stopping.wait(MAX_PAUSE_S)
                continue
            if not entries:
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                continue
            for entry in entries:
                if self._stopping.is_set():
                    return
                try:
                    self.sink.deliver(PassageEvent.from_json(entry.payload))
                except DeliveryError as exc:
                    self._failed(str(exc), pause)
                    self._wait_to_retry(pause)
                    pause = min(pause * 2, self._max_pause)
                    break
                except (ValueError, KeyError) as exc:
                    # An entry this server cannot read (written by another version): it can never be sent.
                    logger.error("events: %s: dropped an unreadable spool entry (%s)", self.sink.name, exc)
                    self.dropped += 1
                else:
                    pause = FIRST_PAUSE_S
                    self._succeeded()
                self._spool.remove(self.sink.name, [entry.id])
                self._queued = max(self._queued - 1, 0)

    def _wait_to_retry(self, pause: float) -> None:
        """Sleep `pause` seconds, or less when the sink (re)connects meanwhile: a broker back after a long
        outage gets the waiting passages at once, not after the longest pause."""
        was_connected = self.sink.connected
        deadline = time.monotonic() + pause
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or (not was_connected and self.sink.connected):
                return
            self._stopping.wait(min(left, RECONNECT_CHECK_S))

    def _failed(self, reason: str, pause: float) -> None:
        self.failures += 1
        self.last_error = reason
        if self.failures == 1 or pause >= self._max_pause:
            logger.warning(
                "events: %s (%s): delivery failed (%s); retrying, %d waiting",
                self.sink.name,
                self.sink.description,
                reason,
                self._queued,
            )

    def _succeeded(self) -> None:
        if self.failures:
            logger.info("events: %s delivers again", self.sink.name)
        self.failures = 0
        self.last_error = None
        self.delivered += 1
        self.last_delivery = time.time()
        if self._on_delivered is not None:
            self._on_delivered(self.sink.name)
