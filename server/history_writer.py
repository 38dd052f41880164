"""Writes passages to the history database from its own thread: the event loop and the video never wait.

`submit` only puts a record in a bounded queue (never blocks). The thread takes what has gathered, up to
`batch_size` records, and writes it in one transaction. When the database is down or slow the batch is
retried (with a growing pause, up to `MAX_RETRY_PAUSE_S`) until it is written, while new passages wait in
the queue; once the queue is full, new ones are dropped and counted (`dropped`, and the
`maskcam_passages_dropped_total` metric through `on_drop`). A batch is written once: the store ignores a
batch it already has (lost acknowledgement after a reconnect). Retention runs in this thread too: at start
and every `retention_interval` seconds, what is older than `keep_days` is deleted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from server.history_store import HistoryStore, PassageRecord

logger = logging.getLogger(__name__)

MAX_RETRY_PAUSE_S = 5.0
DAY_S = 86400.0


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
        self.dropped = 0
        self.written = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: PassageRecord) -> bool:
        """Queue one passage; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        return True

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
            self._retain()
            batch = self._take_batch()
            if batch:
                if not self._write(batch):
                    return
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
        """Write one batch, retrying until it is in; False when the server stops with the database down."""
        batch_uid = uuid.uuid4().hex
        pause = 0.2
        while True:
            try:
                if not self._opened:
                    self.store.open()
                    self._opened = True
                self.store.write(batch_uid, batch)
            except Exception as exc:
                self.failures += 1
                if self.failures == 1 or pause >= MAX_RETRY_PAUSE_S:
                    logger.warning(
                        "history: cannot write %d passages (%s); retrying, %d more waiting",
                        len(batch),
                        type(exc).__name__,
                        self._queue.qsize(),
                    )
                if self._stopping.wait(pause):
                    return False
                pause = min(pause * 2, MAX_RETRY_PAUSE_S)
                continue
            if self.failures:
                logger.info("history: database reachable again; writing resumed")
                self.failures = 0
            self.written += len(batch)
            for _ in batch:
                self._queue.task_done()
            return True

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
