"""A durable queue per channel in one local SQLite file: what must survive a restart until it is delivered.

Two rooms use it: the history (`server.history.writer`: passages waiting for the history database, channel
`history`) and the events (`server.events`: passages waiting for each sink, one channel per sink). The file
is this server's own and always on the local disk, so that it can be written when the history database
or a broker cannot be reached; several servers never share one.

Delivery is at least once: an item leaves its channel only after its destination acknowledged it
(`settle`). `settle` also hands items on to other channels in the same transaction, so that a passage
moves from "waiting for the database" to "waiting for the sinks" without a moment in which a crash
loses it or duplicates it. Each channel is bounded: beyond its limit the oldest items are dropped and
their number returned, for a metric and a log line.

Every method blocks (a few milliseconds: SQLite on the local disk); callers run it in their own threads,
never on the event loop. One connection, serialised by a lock: the writer thread and the sinks' threads
share it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    uid TEXT NOT NULL,
    payload TEXT NOT NULL,
    batch TEXT,
    UNIQUE (channel, uid)
);
CREATE INDEX IF NOT EXISTS spool_channel_id ON spool (channel, id);
"""


class SpoolError(RuntimeError):
    """The spool file cannot be opened or written (a path or permission mistake, a full disk)."""


@dataclass(frozen=True)
class SpoolItem:
    """One thing to deliver: its id in the channel (adding the same uid twice keeps one) and its JSON."""

    uid: str
    payload: str


@dataclass(frozen=True)
class SpoolEntry:
    """An item as stored: `id` orders the channel; `batch` is the id of the delivery attempt it joined."""

    id: int
    uid: str
    payload: str
    batch: str | None


class Spool:
    """The spool file at `path` (its folder is created); `close()` it at the end."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A process crash loses nothing committed in WAL mode with NORMAL; only a power cut may lose
            # the last transactions, and FULL would cost a disk flush per passage.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open the spool file {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, channel: str, items: Sequence[SpoolItem], limit: int) -> int:
        """Append `items` to `channel` (an item whose uid is there already is not added again); returns
        how many of the oldest were dropped to keep the channel within `limit`."""
        return self.settle(channel, (), {channel: items}, {channel: limit})[channel]

    def settle(
        self,
        channel: str,
        ids: Sequence[int],
        forward: Mapping[str, Sequence[SpoolItem]],
        limits: Mapping[str, int],
    ) -> dict[str, int]:
        """In one transaction: remove the entries `ids` of `channel` (delivered) and append `forward`'s
        items to their channels, each kept within its limit; returns per channel how many of its oldest
        items were dropped."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._remove(channel, ids)
                dropped: dict[str, int] = {}
                for target, items in forward.items():
                    self._db.executemany(
                        "INSERT OR IGNORE INTO spool (channel, uid, payload) VALUES (?, ?, ?)",
                        [(target, item.uid, item.payload) for item in items],
                    )
                    dropped[target] = self._trim(target, limits[target])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise SpoolError(f"cannot write the spool file {self.path}: {exc}") from exc
        return dropped

    def take(self, channel: str, limit: int) -> list[SpoolEntry]:
        """The oldest `limit` entries of `channel`, those of an unfinished batch first (so that a batch
        retried after a restart is the same batch)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, uid, payload, batch FROM spool WHERE channel = ? "
                "ORDER BY batch IS NULL, id LIMIT ?",
                (channel, limit),
            ).fetchall()
        batches = {row[3] for row in rows if row[3] is not None}
        if batches:
            first = rows[0][3]
            rows = [row for row in rows if row[3] == first]
        return [SpoolEntry(id=row[0], uid=row[1], payload=row[2], batch=row[3]) for row in rows]

    def mark_batch(self, channel: str, ids: Sequence[int], batch: str) -> None:
        """Remember that `ids` are tried together as `batch` (the history's idempotent count batches)."""
        with self._lock:
            self._db.executemany(
                "UPDATE spool SET batch = ? WHERE channel = ? AND id = ?", [(batch, channel, i) for i in ids]
            )

    def remove(self, channel: str, ids: Sequence[int]) -> None:
        with self._lock:
            self._remove(channel, ids)

    def depth(self, channel: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM spool WHERE channel = ?", (channel,)).fetchone()
        return int(row[0])

    def _remove(self, channel: str, ids: Sequence[int]) -> None:
        self._db.executemany("DELETE FROM spool WHERE channel = ? AND id = ?", [(channel, i) for i in ids])

    def _trim(self, channel: str, limit: int) -> int:
        """Drop the oldest items beyond `limit`; never those of a batch being tried (they may be stored
        already, and a dropped one must not be a stored one)."""
        batched = self._db.execute(
            "SELECT count(*) FROM spool WHERE channel = ? AND batch IS NOT NULL", (channel,)
        ).fetchone()[0]
        cursor = self._db.execute(
            "DELETE FROM spool WHERE id IN (SELECT id FROM spool WHERE channel = ? AND batch IS NULL "
            "ORDER BY id DESC LIMIT -1 OFFSET ?)",
            (channel, max(limit - int(batched), 0)),
        )
        return max(cursor.rowcount, 0)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
