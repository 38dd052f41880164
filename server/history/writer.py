"""Writes passages to the history database from its own thread: the event loop and the video never wait.

`submit` only puts a record in a bounded queue (never blocks). The thread takes what has gathered, up to
`batch_size` records, and writes it in one transaction. What happens when a write fails depends on why:

- the database cannot be reached (down, restarting, a lost connection, a locked SQLite file: SQLAlchemy's
  `OperationalError`, `InterfaceError`, a disconnect): the batch is retried (with a growing pause, up to
  `MAX_RETRY_PAUSE_S`) until it is written, while new passages wait in the queue; once the queue is full,
  new ones are dropped and counted (`dropped`, and the `maskcam_passages_dropped_total` metric through
  `on_drop`). A batch is written once: the store ignores a batch it already has (lost acknowledgement
  after a reconnect);
- the database refuses the data (a constraint, a value it cannot take): retrying would fail forever, so
  the batch's records are written one by one and those refused are logged and dropped (counted);
- the database has a schema newer than this server's (another server migrated it): the writer logs that
  and stops writing for good (`refused`); what is queued or comes later is dropped and counted.

Retention runs in this thread too: at start and every `retention_interval` seconds, what is older than
`keep_days` is deleted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from server.history.store import (
    SCHEMA_VERSION,
    HistoryError,
    HistoryStore,
    PassageRecord,
    SchemaError,
    describe,
)

logger = logging.getLogger(__name__)

MAX_RETRY_PAUSE_S = 5.0
DAY_S = 86400.0
Outcome = Literal["written", "refused_data", "refused_schema", "stopped"]
_SCHEMA_MESSAGES = ("no such table", "no such column", "has no column named")
"""SQLite reports these as OperationalError, but no retry cures them: the tables are not what we know."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed when retried: the database unreachable, not the data refused."""
    if isinstance(exc, SchemaError):
        return False
    if isinstance(exc, HistoryError) and exc.__cause__ is not None:
        exc = exc.__cause__  # `HistoryStore.open` wraps the driver's error
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        message = str(exc.orig).lower()
        return not any(text in message for text in _SCHEMA_MESSAGES)
    return False


def _reason(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement and parameters (a batch's worth of them)."""
    detail = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    first_line = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
    return f"{type(exc).__name__}: {first_line}"[:300]


@dataclass(frozen=True)
class WriterSettings:
    queue_size: int = 10000
    batch_size: int = 500
    batch_wait: float = 0.5
    """Seconds the thread waits for more records after the first one of a batch."""
    keep_days: float = 90.0
    retention_interval: float = DAY_S


class HistoryWriter:
    """The writer thread over an opened `HistoryStore`."""

    def __init__(
        self,
        store: HistoryStore,
        settings: WriterSettings | None = None,
        on_drop: Callable[[], None] | None = None,
        opened: bool = True,
    ) -> None:
        """`opened`: whether `store.open()` succeeded; if not, the thread opens it before its first write."""
        self.store = store
        self._opened = opened
        self.settings = settings or WriterSettings()
        self._on_drop = on_drop
        self._queue: queue.Queue[PassageRecord] = queue.Queue(maxsize=self.settings.queue_size)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._next_retention = 0.0
        self._drop_lock = threading.Lock()
        self.dropped = 0
        self.written = 0
        self.failures = 0
        """Failed attempts in a row to reach the database (0 once a write succeeds again)."""
        self.refused: str | None = None
        """Why the writer stopped writing for good (a newer schema than this server's); None while writing."""

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: PassageRecord) -> bool:
        """Queue one passage; False (and counted) when the queue is full or the writer stopped writing."""
        if self.refused is not None:
            self._count_drops(1)
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._count_drops(1)
            return False
        return True

    def _count_drops(self, number: int) -> None:
        with self._drop_lock:
            self.dropped += number
        if self._on_drop is not None:
            for _ in range(number):
                self._on_drop()

    @property
    def pending(self) -> int:
        """Passages queued or being written."""
        return self._queue.unfinished_tasks

    def flush(self, timeout: float) -> bool:
        """Wait until every queued passage is written; False if some still wait after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most about `timeout` seconds) and end the thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        left = self.pending
        if left:
            logger.warning("history: %d passages were not written before shutdown", left)
        self.store.close()

    def _run(self) -> None:
        while True:
            if self.refused is not None:
                # Writing stopped for good: what was queued (or slips in) is dropped and counted.
                batch = self._take_batch()
                if batch:
                    self._drop(batch)
                elif self._stopping.is_set():
                    return
                continue
            self._retain()
            batch = self._take_batch()
            if batch:
                if not self._write(batch) and self.refused is None:
                    return  # stopping with the database down
            elif self._stopping.is_set():
                return

    def _take_batch(self) -> list[PassageRecord]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait
        while len(batch) < self.settings.batch_size:
            wait = deadline - time.monotonic()
            if wait <= 0 or self._stopping.is_set():
                wait = 0.0
            try:
                batch.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[PassageRecord]) -> bool:
        """Write one batch (see the module's docstring for failures); False when the thread must stop
        writing: the server stops with the database down, or the database's schema is newer."""
        outcome, error = self._attempt(batch)
        if outcome == "refused_data" and len(batch) > 1:
            logger.error(
                "history: the database refused a batch of %d passages (%s); writing them one by one",
                len(batch),
                error,
            )
            for position, record in enumerate(batch):
                outcome, error = self._attempt([record])
                if outcome == "written":
                    self._done([record])
                elif outcome == "refused_data":
                    logger.error("history: the database refused a passage (%s); dropped", error)
                    self._drop([record])
                else:
                    return self._abort(batch[position:], outcome)
            return True
        if outcome == "written":
            self._done(batch)
            return True
        if outcome == "refused_data":
            logger.error("history: the database refused %d passages (%s); dropped", len(batch), error)
            self._drop(batch)
            return True
        return self._abort(batch, outcome)

    def _attempt(self, records: Sequence[PassageRecord]) -> tuple[Outcome, str]:
        """Write `records` as one batch, retrying while the database cannot be reached."""
        batch_uid = uuid.uuid4().hex
        pause = 0.2
        while True:
            try:
                if not self._opened:
                    self.store.open()
                    self._opened = True
                self.store.write(batch_uid, records)
            except Exception as exc:
                if isinstance(exc, SchemaError):
                    return self._refuse(str(exc)), str(exc)
                if not is_transient(exc):
                    newer = self._newer_schema()
                    if newer is not None:
                        return self._refuse(newer), newer
                    return "refused_data", _reason(exc)
                self.failures += 1
                if self.failures == 1 or pause >= MAX_RETRY_PAUSE_S:
                    logger.warning(
                        "history: cannot write %d passages (%s); retrying, %d more waiting",
                        len(records),
                        _reason(exc),
                        self._queue.qsize(),
                    )
                if self._stopping.wait(pause):
                    return "stopped", _reason(exc)
                pause = min(pause * 2, MAX_RETRY_PAUSE_S)
                continue
            if self.failures:
                logger.info("history: database reachable again; writing resumed")
                self.failures = 0
            return "written", ""

    def _newer_schema(self) -> str | None:
        """Why not to write, when a write failed because another server migrated the schema past ours."""
        try:
            version = self.store.schema_version()
        except Exception:
            return None
        if version <= SCHEMA_VERSION:
            return None
        return (
            f"the history database {describe(self.store.target)} now has schema version {version}, newer "
            f"than this server's {SCHEMA_VERSION} (a newer server migrated it): upgrade this server"
        )

    def _refuse(self, reason: str) -> Outcome:
        self.refused = reason
        logger.error("history: %s; this server stops writing passages (they are dropped and counted)", reason)
        return "refused_schema"

    def _abort(self, rest: list[PassageRecord], outcome: Outcome) -> bool:
        if outcome == "refused_schema":
            self._drop(rest)
        return False

    def _done(self, records: Sequence[PassageRecord]) -> None:
        self.written += len(records)
        for _ in records:
            self._queue.task_done()

    def _drop(self, records: Sequence[PassageRecord]) -> None:
        self._count_drops(len(records))
        for _ in records:
            self._queue.task_done()

    def _retain(self) -> None:
        now = time.monotonic()
        if now < self._next_retention or not self._opened:
            return
        self._next_retention = now + self.settings.retention_interval
        cutoff_ms = round((time.time() - self.settings.keep_days * DAY_S) * 1000)
        try:
            removed = self.store.delete_before(cutoff_ms)
        except Exception as exc:
            logger.warning("history: retention failed (%s); trying again in an hour", type(exc).__name__)
            self._next_retention = now + min(3600.0, self.settings.retention_interval)
            return
        if removed:
            logger.info("history: removed %d entries older than %g days", removed, self.settings.keep_days)
