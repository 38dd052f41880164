"""Today's counts per location, read again after each stored passage, in a thread of their own.

`request(locations)` never blocks (the writer thread and the event loop call it); the thread reads each
requested location's counts of today once, however many passages asked meanwhile, and hands them to
`show`. A read that fails (the database down) is dropped: the next passage asks again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import tzinfo

from server.events.messages import TodayCounts
from server.history.api import day_totals, today_in, zero_totals
from server.history.store import HistoryStore, PassageQuery

logger = logging.getLogger(__name__)


class TodayReader:
    def __init__(self, store: HistoryStore, zone: tzinfo, show: Callable[[TodayCounts], None]) -> None:
        self._store = store
        self._zone = zone
        self._show = show
        self._wanted: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events-today", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(5)

    def request(self, locations: Iterable[str]) -> None:
        with self._lock:
            self._wanted.update(locations)
        self._wake.set()

    def read(self, location: str) -> TodayCounts:
        day = today_in(self._zone)
        query = PassageQuery(since_ms=day.since_ms, until_ms=day.until_ms, location=location)
        totals = day_totals(self._store.quarter_counts(query)).get(location) or zero_totals()
        return TodayCounts(location=location, date=day.date.isoformat(), counts=totals)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                wanted, self._wanted = self._wanted, set()
            for location in sorted(wanted):
                try:
                    counts = self.read(location)
                except Exception as exc:  # the database down: the next passage asks again
                    logger.debug(
                        "events: cannot read today's counts of %r (%s)", location, type(exc).__name__
                    )
                    continue
                self._show(counts)
