"""The events in a running server: the sinks, their dispatchers, today's counts and the live states.

Wiring (`setup_events`): at app creation the service is built from the settings and given to the history
as its outlet (each stored passage, in the spool's same transaction that takes it off the history's
queue, becomes one spooled delivery per sink) and as its live observer (each camera's faces per frame).
At start the sinks connect and the dispatchers run; at shutdown they stop (what is still spooled is
delivered after the next start). What is sent follows the history's detail (README's privacy lines):

- `--history-detail passages`: passages (to every sink), today's counts and live states (MQTT);
- `--history-detail counts`: no message per person: today's counts and live states only;
- `--no-history`: live states (and the status) only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import tzinfo

from aiohttp import web

from server.events.dispatcher import Dispatcher
from server.events.factory import make_sinks
from server.events.messages import LiveState, PassageEvent, TodayCounts, Update
from server.events.sink import EventSink, SinkStatus
from server.events.today import TodayReader
from server.history.api import passage_json
from server.history.service import HISTORY
from server.history.store import PassageRecord
from server.logs import DropReport
from server.metrics import ServerMetrics
from server.settings import ServerConfig
from server.spool import SpoolItem

logger = logging.getLogger(__name__)


class EventService:
    def __init__(self, config: ServerConfig, metrics: ServerMetrics, zone: tzinfo) -> None:
        self.config = config
        self.metrics = metrics
        self.zone = zone
        self.sinks: list[EventSink] = make_sinks(config)
        self.per_person = config.history is not None and config.history_detail == "passages"
        self.limit = config.events_queue
        self.dispatchers: list[Dispatcher] = []
        self._today: TodayReader | None = None
        self._states: dict[str, LiveState] = {}
        self._drop_reports: dict[str, DropReport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # The history's outlet (called in the history writer's thread).

    def forward(self, records: Sequence[PassageRecord]) -> Mapping[str, Sequence[SpoolItem]]:
        """One spooled delivery per stored passage and sink; none without per-person history."""
        if not self.per_person or not self.sinks:
            return {}
        events = [self.passage_event(record) for record in records]
        items = [SpoolItem(event.uid, event.to_json()) for event in events]
        return {sink.name: items for sink in self.sinks}

    def dropped(self, channel: str, number: int) -> None:
        """`number` of the oldest deliveries of `channel` left the full spool unsent."""
        self.metrics.events_dropped.labels(sink=channel).inc(number)
        for dispatcher in self.dispatchers:
            if dispatcher.sink.name == channel:
                dispatcher.dropped += number
        report = self._drop_reports.setdefault(
            channel,
            DropReport(
                logger,
                "events: %s: more than --events-queue %d passages wait; the oldest were dropped (%d since "
                "the last such line)",
            ),
        )
        report.add(number, channel, self.limit)

    def written(self, records: Sequence[PassageRecord]) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.wake()
        if self._today is not None:
            self._today.request({record.location for record in records})

    def passage_event(self, record: PassageRecord) -> PassageEvent:
        body = {**passage_json(record, self.zone), "start_ms": record.start_ms}
        return PassageEvent(uid=record.uid, location=record.location, body=body)

    # The sessions' live observer (called on the event loop).

    def camera_opened(self, location: str) -> None:
        for sink in self.sinks:
            sink.add_location(location)
        self.frame(location, ())
        if self._today is not None:
            self._today.request([location])

    def frame(self, location: str, labels: Sequence[str]) -> None:
        state = LiveState.of(location, labels)
        if state.same_as(self._states.get(location)):
            return
        self._states[location] = state
        self._show(state)

    def _show(self, update: Update) -> None:
        for sink in self.sinks:
            try:
                sink.show(update)
            except Exception as exc:  # a sink's trouble never reaches the video
                logger.warning("events: %s could not show an update (%s)", sink.name, exc)

    def _show_today(self, counts: TodayCounts) -> None:
        """From the today reader's thread: shown on the event loop, like the live states."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._show, counts)

    # Lifetime and what the operator sees.

    def start(self, app: web.Application) -> None:
        history = app[HISTORY]
        self._loop = asyncio.get_running_loop()
        if history.writer is not None:
            self._today = TodayReader(history.writer.store, self.zone, self._show_today)
            self._today.start()
        spool = history.spool
        for sink in self.sinks:
            sink.start()
            if spool is not None and self.per_person:
                dispatcher = Dispatcher(sink, spool, on_delivered=self._delivered)
                dispatcher.start()
                self.dispatchers.append(dispatcher)
        if self.sinks:
            logger.info("events: %s", ", ".join(f"{s.name} {s.description}" for s in self.sinks))
        if self.sinks and not self.per_person and any(s.name.startswith("webhook") for s in self.sinks):
            logger.warning("events: webhooks get passages only, and this history keeps none per person")

    def stop(self) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.stop()
        if self._today is not None:
            self._today.stop()
        for sink in self.sinks:
            sink.stop()
        self.dispatchers.clear()

    def _delivered(self, name: str) -> None:
        self.metrics.events_delivered.labels(sink=name).inc()

    def statuses(self) -> list[SinkStatus]:
        by_name = {d.sink.name: d for d in self.dispatchers}
        found = []
        for sink in self.sinks:
            dispatcher = by_name.get(sink.name)
            if dispatcher is not None:
                found.append(dispatcher.status())
            else:
                found.append(SinkStatus(sink.name, sink.description, sink.connected, 0, 0, 0, 0, None, None))
        return found

    def update_metrics(self) -> None:
        for status in self.statuses():
            self.metrics.events_queued.labels(sink=status.name).set(status.queued)
            self.metrics.events_connected.labels(sink=status.name).set(1 if status.connected else 0)


EVENTS = web.AppKey("maskcam_events", EventService)


def setup_events(app: web.Application, config: ServerConfig, metrics: ServerMetrics) -> EventService:
    """Build the service, make it the history's outlet and live observer, start and stop it with the app."""
    history = app[HISTORY]
    service = EventService(config, metrics, history.zone)
    history.outlet = service
    history.observer = service
    app[EVENTS] = service
    app.on_startup.append(_start)
    # At shutdown, after the sessions closed: their last passages wait in the spool for the next start.
    app.on_shutdown.append(_stop)
    app.router.add_get("/api/sinks", _sinks)
    return service


async def _start(app: web.Application) -> None:
    app[EVENTS].start(app)


async def _stop(app: web.Application) -> None:
    await asyncio.to_thread(app[EVENTS].stop)


async def _sinks(request: web.Request) -> web.Response:
    service = request.app[EVENTS]
    return web.json_response(
        {"sinks": [status.to_json() for status in service.statuses()]}, headers={"Cache-Control": "no-store"}
    )
