"""The compliance history in a running server: the writer's lifetime and each session's passages.

`setup_history` gives the app a `HistoryService` (under the `HISTORY` key): at start it opens the configured
database (`server.history.store`, schema checked) and starts the writer thread (`server.history.writer`);
at cleanup, after the sessions have closed and handed over their last passages, it writes what is queued
and stops. Each new session gets its `SessionPassages` from the service. The routes are in
`server.history.api`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, TypeVar, cast

from aiohttp import web

from server.history.buckets import server_timezone
from server.history.feed import LiveObserver, SessionPassages
from server.history.store import Detail, HistoryError, HistoryStore, SchemaError, describe
from server.history.writer import HistoryWriter, PassageOutlet, WriterSettings
from server.metrics import ServerMetrics
from server.settings import ServerConfig
from server.spool import Spool, SpoolError
from vision.passages import PassageRule

logger = logging.getLogger(__name__)
T = TypeVar("T")


class HistoryBusy(RuntimeError):
    """Too many history reads are waiting for the database already."""


class ReadPool:
    """The threads that run database reads for `/api/*`, apart from the default executor.

    The default executor also resolves aioice's candidates and serves aiohttp's static files; reads of a
    database that hangs must not take its threads and stall new cameras. Two threads, and at most
    ``MAX_WAITING`` reads waiting: more are refused at once (503) instead of queueing behind a hung
    database.
    """

    THREADS = 2
    MAX_WAITING = 8

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="history-read")
        self._pending = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._pending >= self.THREADS + self.MAX_WAITING:
            raise HistoryBusy(f"{self._pending} history reads already running or waiting")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class HistoryService:
    """What the history needs at run time; `writer` is None with `--no-history`.

    `live` holds the passages of every camera connected now (what `/api/live` shows): the service hands
    them out and each leaves when its session finishes it, so the history needs nothing of the transport.
    `outlet` and `observer` are the rooms above that want the stored passages and each camera's faces
    (`server.events`), set before the app starts.
    """

    config: ServerConfig
    metrics: ServerMetrics
    zone: tzinfo
    writer: HistoryWriter | None = None
    reads: ReadPool = field(default_factory=lambda: ReadPool())
    live: list[SessionPassages] = field(default_factory=list)
    outlet: PassageOutlet | None = None
    observer: LiveObserver | None = None

    @property
    def spool(self) -> Spool | None:
        """Where passages wait for the database and for the event sinks; None without a history."""
        return self.writer.spool if self.writer is not None else None

    @property
    def rule(self) -> PassageRule:
        return PassageRule(gap=self.config.passage_gap, min_frames=self.config.passage_min_frames)

    def session_passages(self, location: str) -> SessionPassages:
        """A new camera's passages, shown live until `SessionPassages.finish`."""
        passages = SessionPassages(
            location, self.rule, self.writer, self.metrics, on_finish=self.live.remove, observer=self.observer
        )
        self.live.append(passages)
        if self.observer is not None:
            self.observer.camera_opened(location)
        return passages


HISTORY = web.AppKey("maskcam_history", HistoryService)


def setup_history(app: web.Application, config: ServerConfig, metrics: ServerMetrics) -> None:
    """Give `app` its history service, with the writer's start and stop."""
    app[HISTORY] = HistoryService(config=config, metrics=metrics, zone=server_timezone())
    app.on_startup.append(_start_history)
    app.on_cleanup.append(_stop_history)


def open_writer(
    config: ServerConfig, metrics: ServerMetrics, outlet: PassageOutlet | None = None
) -> HistoryWriter | None:
    """The writer over the configured database, schema checked, and its spool (`--spool`: what waits for
    the database survives a restart). A PostgreSQL server that cannot be reached now is opened later by
    the writer (the video does not wait for it); a schema this server does not know, or an SQLite file or
    a spool file that cannot be opened, raises HistoryError."""
    if config.history is None:
        return None
    if config.history_detail not in ("passages", "counts"):
        raise HistoryError(f"unknown history detail {config.history_detail!r}")
    store = HistoryStore(config.history, cast(Detail, config.history_detail))
    opened = True
    try:
        store.open()
    except HistoryError as exc:
        if isinstance(exc, SchemaError) or not store.postgresql:
            # A newer schema, or an SQLite file that cannot be opened (a path or permission mistake): the
            # operator must fix it. Only a database server that is down now may come back by itself.
            store.close()
            raise
        opened = False
        logger.warning("history: %s; passages wait in the spool until it can be reached", exc)
    if opened:
        warn_of_hidden_history(store)
    try:
        spool = Spool(config.spool) if config.spool is not None else None
    except SpoolError as exc:
        store.close()
        raise HistoryError(str(exc)) from exc
    settings = WriterSettings(queue_size=config.history_queue, keep_days=config.history_days)
    writer = HistoryWriter(
        store, settings, on_drop=metrics.passages_dropped.inc, opened=opened, spool=spool, outlet=outlet
    )
    if writer.pending:
        logger.info("history: %d passages from an earlier run wait in %s", writer.pending, config.spool)
    writer.start()
    logger.info(
        "history: %s (%s, kept %g days)", describe(config.history), config.history_detail, config.history_days
    )
    return writer


def warn_of_hidden_history(store: HistoryStore) -> None:
    """A database switched between `passages` and `counts` keeps what the other mode wrote, but
    /api/summary reads one mode's table only: say so at start rather than show a history with a hole."""
    try:
        hidden = store.hidden_entries()
    except Exception as exc:  # a check only: never the reason the server does not start
        logger.debug("history: cannot check for the other mode's entries (%s)", type(exc).__name__)
        return
    if not hidden:
        return
    if store.detail == "counts":
        logger.warning(
            "history: %s holds %d passages written with --history-detail passages; in counts mode "
            "/api/summary shows only the counts written in counts mode, not these (start with "
            "--history-detail passages to see them, or delete them to keep counts only)",
            describe(store.target),
            hidden,
        )
    else:
        logger.warning(
            "history: %s holds counts of %d passages written with --history-detail counts; in passages "
            "mode /api/summary and /api/passages show only passage rows, not these counts (start with "
            "--history-detail counts to see them)",
            describe(store.target),
            hidden,
        )


async def _start_history(app: web.Application) -> None:
    service = app[HISTORY]
    service.writer = await asyncio.to_thread(open_writer, service.config, service.metrics, service.outlet)


async def _stop_history(app: web.Application) -> None:
    service = app[HISTORY]
    service.reads.close()
    writer = service.writer
    if writer is not None:
        await asyncio.to_thread(writer.stop)
        service.writer = None
        if service.config.spool is not None:
            writer.spool.close()
