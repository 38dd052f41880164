"""Writes passages to the history database from its own thread: the event loop and the video never wait.

`submit` only puts a record in a small in-memory hand-off queue (never blocks). The thread moves what
arrives into the spool (`server.spool`, channel `history`: a local SQLite file, so that a passage waiting
for the database survives a restart of the server), then writes the spool's oldest, up to `batch_size`
records, in one transaction, and takes them off the spool only once the database committed them; in that
same spool transaction they are handed on to the event sinks (`PassageOutlet.forward`). What happens when
a write fails depends on why:

- the database cannot be reached (down, restarting, a lost connection, a locked SQLite file: SQLAlchemy's
  `OperationalError`, `InterfaceError`, a disconnect): the batch is retried (with a growing pause, up to
  `MAX_RETRY_PAUSE_S`) until it is written, while new passages go on into the spool; beyond `queue_size`
  spooled passages the oldest are dropped and counted (`dropped`, and the `maskcam_passages_dropped_total`
  metric through `on_drop`) with a log line. A batch is written once: the store ignores a batch it
  already has (lost acknowledgement after a reconnect, or a restart between the commit and the spool's);
- the database refuses the data (a constraint, a value it cannot take): retrying would fail forever, so
  the batch's records are written one by one and those refused are logged and dropped (counted);
- the database has a schema newer than this server's (another server migrated it): the writer logs that
  and stops writing for good (`refused`); what is spooled or comes later is dropped and counted.

Retention runs in this thread too: at start and every `retention_interval` seconds, what is older than
`keep_days` is deleted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import sqlalchemy as sa

from server.history.store import (
    SCHEMA_VERSION,
    HistoryError,
    HistoryStore,
    PassageRecord,
    SchemaError,
    describe,
)
from server.logs import DropReport
from server.spool import Spool, SpoolEntry, SpoolItem

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


CHANNEL = "history"
"""The spool channel of the passages waiting for the database."""
IN_MEMORY = Path(":memory:")
"""A spool that lives as long as the process (tests, and servers started without a spool file)."""
HANDOFF_SIZE = 1000
"""The in-memory hand-off between the event loop and the thread; it never holds more than a moment's
passages, since the thread moves them to the spool before anything else."""


class PassageOutlet(Protocol):
    """Where stored passages go next (the event sinks, `server.events`), told by the writer's thread."""

    limit: int
    """Deliveries kept per channel at most; beyond it the oldest are dropped (`dropped`)."""

    def forward(self, records: Sequence[PassageRecord]) -> Mapping[str, Sequence[SpoolItem]]:
        """Per spool channel, what to deliver of these records: spooled in the transaction that takes
        them off the history's channel."""
        ...

    def dropped(self, channel: str, number: int) -> None: ...

    def written(self, records: Sequence[PassageRecord]) -> None:
        """After the spool's commit: the records are stored and their deliveries spooled."""
        ...


def to_item(record: PassageRecord) -> SpoolItem:
    return SpoolItem(record.uid, json.dumps(dataclasses.asdict(record)))


def from_entry(entry: SpoolEntry) -> PassageRecord:
    return PassageRecord(**json.loads(entry.payload))


@dataclass(frozen=True)
class WriterSettings:
    queue_size: int = 10000
    """Passages kept waiting for the database at most (in the spool)."""
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
        spool: Spool | None = None,
        outlet: PassageOutlet | None = None,
    ) -> None:
        """`opened`: whether `store.open()` succeeded; if not, the thread opens it before its first write.
        `spool`: where passages wait for the database (by default one in memory, lost with the process);
        what an earlier run left there is written first."""
        self.store = store
        self._opened = opened
        self.settings = settings or WriterSettings()
        self._on_drop = on_drop
        self.spool = spool if spool is not None else Spool(IN_MEMORY)
        self._own_spool = spool is None
        self.outlet = outlet
        self._queue: queue.Queue[PassageRecord] = queue.Queue(maxsize=HANDOFF_SIZE)
        self._spooled = self.spool.depth(CHANNEL)
        self._drop_report = DropReport(
            logger,
            "history: %d passages wait for the database already (--history-queue); the oldest were dropped "
            "(%d since the last such line)",
        )
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
        """Hand one passage to the thread; False (and counted) when the writer stopped writing, or the
        hand-off is full (the thread cannot even reach the spool file)."""
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
        """Passages handed over and not yet written: in the hand-off or in the spool."""
        return self._queue.unfinished_tasks + self._spooled

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
        if not self._thread.is_alive():
            while self._spool_handoff():  # what came after the thread's last look waits in the spool too
                pass
        left = self.pending
        if left:
            where = "are lost" if self._own_spool else f"wait in {self.spool.path} for the next start"
            logger.warning("history: %d passages were not written before shutdown; they %s", left, where)
        self.store.close()
        if self._own_spool:
            self.spool.close()

    def _run(self) -> None:
        while True:
            arrived = self._spool_handoff(wait=0.2 if not self._spooled else 0.0)
            if self.refused is not None:
                # Writing stopped for good: what is spooled (or slips in) is dropped and counted.
                entries = self.spool.take(CHANNEL, self.settings.batch_size)
                if entries:
                    self._drop(entries)
                elif self._stopping.is_set() and not arrived:
                    return
                continue
            self._retain()
            entries = self.spool.take(CHANNEL, self.settings.batch_size)
            if entries:
                if not self._write(self._as_batch(entries)) and self.refused is None:
                    return  # stopping with the database down: the spool keeps the rest
            elif self._stopping.is_set() and not arrived:
                return

    def _spool_handoff(self, wait: float = 0.0) -> int:
        """Move what `submit` handed over into the spool: waits up to `wait` s for the first record, then
        `batch_wait` for more (a batch's worth gathers). Returns how many moved."""
        records: list[PassageRecord] = []
        try:
            records.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
        except queue.Empty:
            return 0
        deadline = time.monotonic() + (0.0 if self._stopping.is_set() else self.settings.batch_wait)
        while len(records) < self.settings.batch_size:
            left = deadline - time.monotonic()
            try:
                records.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        dropped = self.spool.add(CHANNEL, [to_item(r) for r in records], self.settings.queue_size)
        self._spooled = self.spool.depth(CHANNEL)
        for _ in records:
            self._queue.task_done()
        if dropped:
            self._drop_report.add(dropped, self.settings.queue_size)
            self._count_drops(dropped)
        return len(records)

    def _as_batch(self, entries: list[SpoolEntry]) -> _Batch:
        """The entries as one write batch: a batch id kept in the spool, so that a batch tried before a
        restart is the same batch (the counts mode's idempotence) when tried again."""
        batch = entries[0].batch
        if batch is None:
            batch = uuid.uuid4().hex
            self.spool.mark_batch(CHANNEL, [e.id for e in entries], batch)
        return _Batch(batch, entries, [from_entry(e) for e in entries])

    def _write(self, batch: _Batch) -> bool:
        """Write one batch (see the module's docstring for failures); False when the thread must stop
        writing: the server stops with the database down, or the database's schema is newer."""
        outcome, error = self._attempt(batch.uid, batch.records)
        if outcome == "refused_data" and len(batch.records) > 1:
            logger.error(
                "history: the database refused a batch of %d passages (%s); writing them one by one",
                len(batch.records),
                error,
            )
            for position, (entry, record) in enumerate(zip(batch.entries, batch.records, strict=True)):
                outcome, error = self._attempt(uuid.uuid4().hex, [record])
                if outcome == "written":
                    self._done([entry], [record])
                elif outcome == "refused_data":
                    logger.error("history: the database refused a passage (%s); dropped", error)
                    self._drop([entry])
                else:
                    return self._abort(batch.entries[position:], outcome)
            return True
        if outcome == "written":
            self._done(batch.entries, batch.records)
            return True
        if outcome == "refused_data":
            logger.error("history: the database refused %d passages (%s); dropped", len(batch.records), error)
            self._drop(batch.entries)
            return True
        return self._abort(batch.entries, outcome)

    def _attempt(self, batch_uid: str, records: Sequence[PassageRecord]) -> tuple[Outcome, str]:
        """Write `records` as one batch, retrying while the database cannot be reached."""
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
                        max(self._spooled - len(records), 0),
                    )
                if self._pause(pause):
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

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` before the next try, moving new passages into the spool meanwhile; True when the
        writer is stopping."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._spool_handoff(wait=min(left, 0.2))
        return True

    def _abort(self, rest: Sequence[SpoolEntry], outcome: Outcome) -> bool:
        if outcome == "refused_schema":
            self._drop(rest)
        return False

    def _done(self, entries: Sequence[SpoolEntry], records: Sequence[PassageRecord]) -> None:
        """Stored: off the spool's history channel and, in the same transaction, onto the sinks'."""
        outlet = self.outlet
        forward = outlet.forward(records) if outlet is not None else {}
        limits = {channel: outlet.limit for channel in forward} if outlet is not None else {}
        dropped = self.spool.settle(CHANNEL, [e.id for e in entries], forward, limits)
        self._spooled = self.spool.depth(CHANNEL)
        self.written += len(records)
        if outlet is not None:
            for channel, number in dropped.items():
                if number:
                    outlet.dropped(channel, number)
            outlet.written(records)

    def _drop(self, entries: Sequence[SpoolEntry]) -> None:
        self.spool.remove(CHANNEL, [e.id for e in entries])
        self._spooled = self.spool.depth(CHANNEL)
        self._count_drops(len(entries))

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


@dataclass(frozen=True)
class _Batch:
    """Spooled passages written together: the batch id, their spool entries and their records."""

    uid: str
    entries: list[SpoolEntry]
    records: list[PassageRecord]
