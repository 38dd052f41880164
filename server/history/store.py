"""The compliance history's database: SQLite (one file, WAL) or PostgreSQL, through SQLAlchemy Core.

What is stored, and all that is stored (README.md and docs/DEPLOY.md say the same): per passage (table
`passages`) a row number `id`, a random `uid`, its start time `start_ms` and the start's 15-minute slot
`quarter`, the camera's `location`, the `label`, its `confidence`, the duration `seconds`, the number of
analysed `frames`, the face's `size` class (small/medium/large) and whether the label changed
(`label_changed`); with `--history-detail counts` no row per person, only per 15 minutes, location and
label the number of passages (`passage_counts`), and per write batch of today and yesterday a random id
with its UTC day (`written_batches`). Never an image, a crop, an embedding or a face box.

The schema is versioned (`maskcam_schema`) and brought up to date at start; a database written by a newer
server is refused (`HistoryError`). Writes are idempotent: a passage has a unique id, a batch of counts
a unique random batch id stored in the same transaction, so a batch retried after a lost connection is
never counted twice. A batch id is kept with its UTC day only (no finer time: at a quiet entrance one
batch can be one person) and deleted once it is older than yesterday, long before any retry gives up.
Every method blocks: the writer thread and `asyncio.to_thread` call them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

Detail = Literal["passages", "counts"]
SCHEMA_VERSION = 2
"""1: passages, counts, batch ids with their write time in ms; 2: batch ids with their UTC day only."""
QUARTER_MS = 15 * 60 * 1000
"""Counts are kept per 15 minutes: hours and days in any time zone (all offsets are multiples of 15
minutes) are sums of these."""
MAX_LOCATION = 64
DAY_MS = 86_400_000
BATCH_DAYS_KEPT = 2
"""Batch ids of today and yesterday are kept (a retry across midnight is still recognised), older ones go."""


class HistoryError(RuntimeError):
    """The history database cannot be used (unreachable, or a schema this server does not know)."""


class SchemaError(HistoryError):
    """The database has a schema version newer than this server's: the server must not write to it."""


@dataclass(frozen=True)
class PassageRecord:
    """One passage as it is stored: nothing identifies the person."""

    uid: str
    """Random id, so that a batch written again after a lost connection adds nothing."""
    start_ms: int
    location: str
    label: str
    confidence: float
    seconds: float
    frames: int
    size: str
    label_changed: bool


@dataclass(frozen=True)
class QuarterCount:
    """Passages of one label at one location in one 15-minute slot."""

    quarter: int
    """Epoch milliseconds // QUARTER_MS."""
    location: str
    label: str
    count: int


@dataclass(frozen=True)
class PassageQuery:
    """Filters of /api/passages and /api/summary: epoch-ms bounds (since inclusive, until exclusive)."""

    since_ms: int | None = None
    until_ms: int | None = None
    location: str | None = None
    limit: int = 1000


metadata = sa.MetaData()
schema_table = sa.Table("maskcam_schema", metadata, sa.Column("version", sa.Integer, nullable=False))
passages = sa.Table(
    "passages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("start_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("quarter", sa.Integer, nullable=False),
    sa.Column("location", sa.String(MAX_LOCATION), nullable=False),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("size", sa.String(8), nullable=False),
    sa.Column("label_changed", sa.Boolean, nullable=False),
    sa.Index("passages_location_start", "location", "start_ms"),
)
counts = sa.Table(
    "passage_counts",
    metadata,
    sa.Column("quarter", sa.Integer, primary_key=True),
    sa.Column("location", sa.String(MAX_LOCATION), primary_key=True),
    sa.Column("label", sa.String(32), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)
batches = sa.Table(
    "written_batches",
    metadata,
    sa.Column("uid", sa.String(32), primary_key=True),
    sa.Column("day", sa.Integer, nullable=False, index=True),
    # SQLite: no rowid either, so that not even the order in which batches came is kept.
    sqlite_with_rowid=False,
)
"""The counts mode's batch ids, for idempotent writes: a random id and the UTC day (epoch ms // DAY_MS)."""
_TABLES = (passages, counts, batches)


def is_postgresql(target: str) -> bool:
    return target.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


def engine_for(target: str) -> Engine:
    """An engine for a PostgreSQL URL or an SQLite file path (its folder is created)."""
    if is_postgresql(target):
        url = sa.make_url(target.replace("postgres://", "postgresql://", 1))
        url = url.set(drivername="postgresql+psycopg")
        # A database that hangs must not hold a thread for ever: statements end after 10 s, a silent
        # connection is noticed by TCP keepalives, and a wait for a pooled connection ends after 5 s.
        connect_args = {
            "connect_timeout": 5,
            "options": "-c statement_timeout=10000",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        return sa.create_engine(
            url, pool_pre_ping=True, pool_size=2, max_overflow=2, pool_timeout=5, connect_args=connect_args
        )
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HistoryError(f"cannot create the folder of the history file {target}: {exc}") from exc
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 10})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # What is deleted (old passages, old batch ids, version 1's batch times) is overwritten, not left
        # in the file's free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def describe(target: str) -> str:
    """The target for logs: a PostgreSQL URL without its password."""
    if is_postgresql(target):
        return sa.make_url(target).render_as_string(hide_password=True)
    return target


class HistoryStore:
    """One history database; `open()` it (creates or migrates the schema) before use."""

    def __init__(self, target: str, detail: Detail = "passages") -> None:
        self.target = target
        self.detail: Detail = detail
        self.engine = engine_for(target)
        self.postgresql = is_postgresql(target)

    def open(self) -> int:
        """Create or migrate the schema; returns the version found before (0 for a new database)."""
        try:
            with self.engine.begin() as connection:
                if self.postgresql:
                    # Several servers may start at once against one database: one migrates, the others wait.
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(7315001)"))
                return self._migrate(connection)
        except sa.exc.DatabaseError as exc:
            raise HistoryError(f"cannot open the history database {describe(self.target)}: {exc}") from exc

    def _migrate(self, connection: Connection) -> int:
        schema_table.create(connection, checkfirst=True)
        found = connection.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
        version = int(found or 0)
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the history database {describe(self.target)} has schema version {version}, newer than "
                f"this server's {SCHEMA_VERSION}: upgrade the server, or point --history elsewhere"
            )
        if version < 1:
            for table in _TABLES:
                table.create(connection, checkfirst=True)
        elif version < 2:
            # Version 1 kept each counts batch with its write time in ms: a per-person time at a quiet
            # entrance. The ids only matter to a retry of this process's writer, so they can all go.
            connection.execute(sa.text("DROP TABLE written_batches"))
            batches.create(connection)
        # Later versions: `if version < 3: ...` here, each step in this same transaction.
        if version < SCHEMA_VERSION:
            connection.execute(sa.delete(schema_table))
            connection.execute(sa.insert(schema_table).values(version=SCHEMA_VERSION))
        return version

    def schema_version(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.max(schema_table.c.version))).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()

    def hidden_entries(self) -> int:
        """What the other `--history-detail` mode wrote here and this one does not read: passage rows in
        counts mode, counts in passages mode (a database switched from one mode to the other)."""
        if self.detail == "counts":
            statement = sa.select(sa.func.count()).select_from(passages)
        else:
            statement = sa.select(sa.func.coalesce(sa.func.sum(counts.c["count"]), 0))
        with self.engine.connect() as connection:
            return int(connection.execute(statement).scalar() or 0)

    def write(self, batch_uid: str, records: Sequence[PassageRecord]) -> None:
        """Store one batch in one transaction; writing the same batch again changes nothing."""
        if not records:
            return
        with self.engine.begin() as connection:
            if self.detail == "passages":
                rows = [{**vars(record), "quarter": record.start_ms // QUARTER_MS} for record in records]
                connection.execute(
                    self._insert(passages).on_conflict_do_nothing(index_elements=["uid"]), rows
                )
                return
            today = _now_ms() // DAY_MS
            connection.execute(sa.delete(batches).where(batches.c.day <= today - BATCH_DAYS_KEPT))
            done = self._insert(batches).values(uid=batch_uid, day=today)
            done = done.on_conflict_do_nothing(index_elements=["uid"]).returning(batches.c.uid)
            if connection.execute(done).first() is None:
                return  # this batch is in already
            for (quarter, location, label), number in _aggregate(records).items():
                upsert = self._insert(counts).values(
                    quarter=quarter, location=location, label=label, count=number
                )
                connection.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["quarter", "location", "label"],
                        set_={"count": counts.c["count"] + number},
                    )
                )

    def _insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table) if self.postgresql else sqlite.insert(table)

    def passages(self, query: PassageQuery) -> list[PassageRecord]:
        """Newest first."""
        statement = sa.select(*(passages.c[name] for name in _RECORD_FIELDS))
        statement = statement.where(*_filters(query))
        statement = statement.order_by(passages.c.start_ms.desc(), passages.c.id.desc()).limit(query.limit)
        with self.engine.connect() as connection:
            return [PassageRecord(**row._asdict()) for row in connection.execute(statement)]

    def quarter_counts(self, query: PassageQuery) -> list[QuarterCount]:
        """Passages per 15-minute slot, location and label, from the rows or from the kept counts."""
        if self.detail == "passages":
            statement = (
                sa.select(passages.c.quarter, passages.c.location, passages.c.label, sa.func.count())
                .where(*_filters(query))
                .group_by(passages.c.quarter, passages.c.location, passages.c.label)
            )
        else:
            statement = (
                sa.select(counts.c.quarter, counts.c.location, counts.c.label, sa.func.sum(counts.c["count"]))
                .where(*_quarter_filters(query))
                .group_by(counts.c.quarter, counts.c.location, counts.c.label)
            )
        with self.engine.connect() as connection:
            return [
                QuarterCount(quarter=int(q), location=loc, label=label, count=int(n))
                for q, loc, label, n in connection.execute(statement)
            ]

    def delete_before(self, cutoff_ms: int) -> int:
        """Retention: remove what started before `cutoff_ms`; returns the passages/slots removed."""
        with self.engine.begin() as connection:
            removed = connection.execute(sa.delete(passages).where(passages.c.start_ms < cutoff_ms)).rowcount
            removed += connection.execute(
                sa.delete(counts).where(counts.c.quarter < cutoff_ms // QUARTER_MS)
            ).rowcount
            today = _now_ms() // DAY_MS
            connection.execute(sa.delete(batches).where(batches.c.day <= today - BATCH_DAYS_KEPT))
        return int(removed)


_RECORD_FIELDS = tuple(PassageRecord.__dataclass_fields__)


def _filters(query: PassageQuery) -> list[Any]:
    column = passages.c.start_ms
    conditions = []
    if query.since_ms is not None:
        conditions.append(column >= query.since_ms)
    if query.until_ms is not None:
        conditions.append(column < query.until_ms)
    if query.location is not None:
        conditions.append(passages.c.location == query.location)
    return conditions


def _quarter_filters(query: PassageQuery) -> list[Any]:
    """Counts mode knows only slots: a slot is in when it starts within the bounds."""
    conditions = []
    if query.since_ms is not None:
        conditions.append(counts.c.quarter >= -(-query.since_ms // QUARTER_MS))
    if query.until_ms is not None:
        conditions.append(counts.c.quarter < -(-query.until_ms // QUARTER_MS))
    if query.location is not None:
        conditions.append(counts.c.location == query.location)
    return conditions


def _aggregate(records: Sequence[PassageRecord]) -> dict[tuple[int, str, str], int]:
    totals: dict[tuple[int, str, str], int] = {}
    for record in records:
        key = (record.start_ms // QUARTER_MS, record.location, record.label)
        totals[key] = totals.get(key, 0) + 1
    return totals


def _now_ms() -> int:
    return round(time.time() * 1000)
