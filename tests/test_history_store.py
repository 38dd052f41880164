"""The history database and its writer, against both backends: SQLite in a temp folder and a real
PostgreSQL server (a throwaway cluster, tests/postgres_helpers.py)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from server.history.feed import to_record
from server.history.service import open_writer
from server.history.store import (
    DAY_MS,
    QUARTER_MS,
    SCHEMA_VERSION,
    Detail,
    HistoryError,
    HistoryStore,
    PassageQuery,
    PassageRecord,
    SchemaError,
    describe,
    schema_table,
)
from server.history.store import batches as batches_table
from server.history.store import counts as counts_table
from server.history.store import passages as passages_table
from server.history.writer import HistoryWriter, WriterSettings, from_entry, to_item
from server.location import PATTERN as location_pattern
from server.location import parse_location
from server.metrics import ServerMetrics
from server.settings import ServerConfig
from server.spool import Spool
from tests.postgres_helpers import REQUIRE_ENV, free_port, postgres_bin, postgres_missing
from vision.passages import Passage

HOUR_MS = 3600 * 1000
T0 = 1_780_000_200_000  # 2026-05-28, a quarter boundary plus 5 minutes


def record(
    start_ms: int, location: str = "Main entrance", label: str = "with_mask", **extra: object
) -> PassageRecord:
    passage = Passage(
        start=start_ms / 1000,
        seconds=2.5,
        label=label,
        confidence=0.9,
        frames=25,
        size="medium",
        label_changed=False,
    )
    made = to_record(passage, location)
    return PassageRecord(**{**vars(made), **extra})


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "sub" / "history.sqlite3")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(target: str) -> Iterator[HistoryStore]:
    opened = HistoryStore(target)
    assert opened.open() == 0
    yield opened
    opened.close()


def test_passages_come_back_newest_first_with_filters(store: HistoryStore) -> None:
    rows = [
        record(T0, "Main entrance", "with_mask"),
        record(T0 + HOUR_MS, "Main entrance", "without_mask"),
        record(T0 + 2 * HOUR_MS, "Side door", "mask_worn_incorrectly"),
    ]
    store.write("batch-1", rows)
    found = store.passages(PassageQuery())
    assert [r.start_ms for r in found] == [T0 + 2 * HOUR_MS, T0 + HOUR_MS, T0]
    assert found[-1] == rows[0]
    assert [r.label for r in store.passages(PassageQuery(location="Main entrance"))] == [
        "without_mask",
        "with_mask",
    ]
    window = PassageQuery(since_ms=T0 + HOUR_MS, until_ms=T0 + 2 * HOUR_MS)
    assert [r.start_ms for r in store.passages(window)] == [T0 + HOUR_MS]
    assert len(store.passages(PassageQuery(limit=2))) == 2


def test_a_batch_written_twice_is_stored_once(store: HistoryStore) -> None:
    rows = [record(T0), record(T0 + 1000)]
    store.write("batch-1", rows)
    store.write("batch-1", rows)  # the acknowledgement was lost: the writer tries again
    assert len(store.passages(PassageQuery())) == 2


def test_quarter_counts_from_the_rows(store: HistoryStore) -> None:
    store.write("b", [record(T0), record(T0 + 1000), record(T0 + 1000, label="without_mask")])
    counts = {(c.quarter, c.label): c.count for c in store.quarter_counts(PassageQuery())}
    assert counts == {(T0 // QUARTER_MS, "with_mask"): 2, (T0 // QUARTER_MS, "without_mask"): 1}


def test_counts_mode_keeps_no_row_per_person(target: str) -> None:
    store = HistoryStore(target, "counts")
    store.open()
    batch = [record(T0), record(T0 + 60_000), record(T0 + HOUR_MS, label="without_mask")]
    store.write("batch-1", batch)
    store.write("batch-1", batch)  # retried: counted once
    store.write("batch-2", [record(T0 + 120_000)])
    counts = {(c.quarter, c.label): c.count for c in store.quarter_counts(PassageQuery())}
    assert counts == {(T0 // QUARTER_MS, "with_mask"): 3, ((T0 + HOUR_MS) // QUARTER_MS, "without_mask"): 1}
    later = PassageQuery(since_ms=T0 + 30 * 60_000)
    assert [c.label for c in store.quarter_counts(later)] == ["without_mask"]
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM passages")).scalar() == 0
    store.close()


def test_the_history_survives_a_restart_and_its_schema_version_is_checked(target: str) -> None:
    first = HistoryStore(target)
    assert first.open() == 0
    first.write("b", [record(T0)])
    first.close()
    again = HistoryStore(target)
    assert again.open() == SCHEMA_VERSION
    assert again.schema_version() == SCHEMA_VERSION
    assert len(again.passages(PassageQuery())) == 1
    with again.engine.begin() as connection:
        connection.execute(sa.update(schema_table).values(version=SCHEMA_VERSION + 1))
    again.close()
    newer = HistoryStore(target)
    with pytest.raises(SchemaError, match="newer than this server"):
        newer.open()
    newer.close()


def test_a_version_1_database_loses_its_batch_times_and_keeps_its_history(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        CREATE TABLE maskcam_schema (version INTEGER NOT NULL);
        INSERT INTO maskcam_schema VALUES (1);
        CREATE TABLE passage_counts (quarter INTEGER, location VARCHAR(64), label VARCHAR(32),
            count INTEGER NOT NULL, PRIMARY KEY (quarter, location, label));
        INSERT INTO passage_counts VALUES (1977777, 'Main entrance', 'with_mask', 7);
        CREATE TABLE written_batches (uid VARCHAR(32) PRIMARY KEY, written_ms BIGINT NOT NULL);
        INSERT INTO written_batches VALUES ('old-batch', 1780000200123);
        """
    )
    connection.commit()
    connection.close()
    store = HistoryStore(str(path), "counts")
    with store.engine.begin() as begin:  # version 1's passages table, as version 2's
        passages_table.create(begin)
    assert store.open() == 1
    assert store.schema_version() == SCHEMA_VERSION == 2
    with store.engine.connect() as connection_:
        columns = {c["name"] for c in sa.inspect(connection_).get_columns("written_batches")}
        assert columns == {"uid", "day"}
        assert connection_.execute(sa.text("SELECT count(*) FROM written_batches")).scalar() == 0
    assert [(c.quarter, c.count) for c in store.quarter_counts(PassageQuery())] == [(1977777, 7)]
    store.write("new", [record(T0)])
    store.write("new", [record(T0)])
    assert sum(c.count for c in store.quarter_counts(PassageQuery())) == 8
    store.close()
    assert b"old-batch" not in path.read_bytes(), "the dropped batch rows are overwritten, not left behind"


def test_counts_batch_ids_are_kept_two_days_at_most(target: str) -> None:
    store = HistoryStore(target, "counts")
    store.open()
    today = time.time_ns() // 1_000_000 // DAY_MS
    with store.engine.begin() as connection:
        for uid, day in (("two-days-ago", today - 2), ("yesterday", today - 1)):
            connection.execute(
                sa.text("INSERT INTO written_batches VALUES (:uid, :day)"), {"uid": uid, "day": day}
            )
    store.write("now", [record(T0)])
    store.write("yesterday", [record(T0)])  # still known: a retry across midnight counts nothing
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT uid, day FROM written_batches")).all()
    kept = {str(uid): int(day) for uid, day in rows}
    assert kept == {"yesterday": today - 1, "now": today}
    assert sum(c.count for c in store.quarter_counts(PassageQuery())) == 1
    store.close()


def test_retention_deletes_what_is_older(store: HistoryStore) -> None:
    store.write("b", [record(T0), record(T0 + 2 * HOUR_MS)])
    assert store.delete_before(T0 + HOUR_MS) == 1
    assert [r.start_ms for r in store.passages(PassageQuery())] == [T0 + 2 * HOUR_MS]


def test_the_writer_batches_and_applies_retention(target: str) -> None:
    store = HistoryStore(target)
    store.open()
    old = round((time.time() - 100 * 86400) * 1000)
    store.write("old", [record(old)])
    writer = HistoryWriter(store, WriterSettings(keep_days=90, batch_wait=0.05))
    writer.start()
    now = round(time.time() * 1000)
    for index in range(50):
        assert writer.submit(record(now + index))
    assert writer.flush(10)
    reader = HistoryStore(target)
    assert {r.start_ms for r in reader.passages(PassageQuery())} == {now + i for i in range(50)}
    reader.close()
    writer.stop()
    assert writer.written == 50 and writer.dropped == 0


def test_an_unreachable_database_fills_the_spool_then_the_oldest_passages_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"postgresql://maskcam@127.0.0.1:{free_port()}/history"
    store = HistoryStore(dead)
    with pytest.raises(HistoryError, match="cannot open"):
        store.open()
    drops: list[int] = []
    writer = HistoryWriter(
        store,
        WriterSettings(queue_size=3, batch_size=2, batch_wait=0.05),
        lambda: drops.append(1),
        opened=False,
    )
    with caplog.at_level(logging.WARNING, logger="server.history.writer"):
        writer.start()
        accepted = [writer.submit(record(T0 + i)) for i in range(8)]
        assert wait_until(lambda: writer.pending == 3), "the spool holds --history-queue passages"
        started = time.monotonic()
        writer.stop(timeout=2)
    assert time.monotonic() - started < 5, "stopping must not hang on a dead database"
    assert all(accepted) and writer.dropped == len(drops) == 5
    assert writer.failures >= 1
    assert any("oldest were dropped" in r.getMessage() for r in caplog.records)


def test_passages_waiting_for_the_database_survive_a_restart_and_are_written_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    target = str(tmp_path / "history.sqlite3")
    dead = HistoryStore(f"postgresql://maskcam@127.0.0.1:{free_port()}/history")
    spool = Spool(path)
    writer = HistoryWriter(dead, WriterSettings(batch_wait=0.05), opened=False, spool=spool)
    writer.start()
    now = round(time.time() * 1000)
    waiting = [record(now + i) for i in range(5)]
    for item in waiting:
        assert writer.submit(item)
    assert wait_until(lambda: writer.failures >= 1)
    writer.stop(timeout=2)
    assert writer.written == 0 and writer.pending == 5
    spool.close()
    # The next start, with the database back: what waited is written first, once.
    store = HistoryStore(target)
    store.open()
    spool = Spool(path)
    writer = HistoryWriter(store, WriterSettings(batch_wait=0.05), spool=spool)
    assert writer.pending == 5
    writer.start()
    later = record(now + 10)
    assert writer.submit(later) and writer.flush(10)
    writer.stop()
    assert writer.written == 6 and spool.depth("history") == 0
    reader = HistoryStore(target)
    assert sorted(r.uid for r in reader.passages(PassageQuery())) == sorted(r.uid for r in [*waiting, later])
    reader.close()
    spool.close()


@pytest.mark.parametrize("detail", ["passages", "counts"])
def test_a_batch_committed_before_a_crash_is_not_counted_twice_after_it(
    tmp_path: Path, detail: Detail
) -> None:
    """The database committed, then the server died before the spool let the batch go: the same batch is
    tried again at the next start (the spool kept its batch id) and the store ignores it."""
    path = tmp_path / "spool.sqlite3"
    target = str(tmp_path / "history.sqlite3")
    store = HistoryStore(target, detail)
    store.open()
    spool = Spool(path)
    now = round(time.time() * 1000)
    spool.add("history", [to_item(record(now + i)) for i in range(3)], limit=100)
    entries = spool.take("history", 10)
    spool.mark_batch("history", [e.id for e in entries], "batch-1")
    store.write("batch-1", [from_entry(e) for e in entries])  # committed; then the crash
    spool.close()
    spool = Spool(path)
    writer = HistoryWriter(store, WriterSettings(batch_wait=0.05), spool=spool)
    writer.start()
    assert writer.flush(10)
    writer.stop()
    reader = HistoryStore(target, detail)
    assert sum(c.count for c in reader.quarter_counts(PassageQuery())) == 3
    reader.close()
    spool.close()


@pytest.mark.parametrize("detail", ["passages", "counts"])
def test_the_stored_file_holds_no_image_data(tmp_path: Path, detail: Detail) -> None:
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(str(path), detail)
    store.open()
    # As at a quiet entrance: one person per batch.
    for i, label in enumerate(["with_mask", "without_mask"] * 50):
        store.write(f"batch-{i}", [record(T0 + i * 1000, label=label)])
    store.close()
    allowed = {
        "passages": {
            "id",
            "uid",
            "start_ms",
            "quarter",
            "location",
            "label",
            "confidence",
            "seconds",
            "frames",
            "size",
            "label_changed",
        },
        "passage_counts": {"quarter", "location", "label", "count"},
        "written_batches": {"uid", "day"},
        "maskcam_schema": {"version"},
    }
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set(allowed)
    for table, columns in allowed.items():
        info = connection.execute(f"PRAGMA table_info({table})").fetchall()
        assert {row[1] for row in info} == columns
        assert not any("BLOB" in row[2].upper() for row in info), f"{table} has a binary column"
    for row in connection.execute("SELECT * FROM passages"):
        for value in row:
            assert isinstance(value, int | float) or (isinstance(value, str) and len(value) <= 64)
    if detail == "counts":
        assert connection.execute("SELECT count(*) FROM passages").fetchone() == (0,)
        # No time finer than 15 minutes anywhere: no epoch seconds or milliseconds, only quarters and days.
        for table in allowed:
            for row in connection.execute(f"SELECT * FROM {table}"):
                for value in row:
                    assert not (isinstance(value, int | float) and value > 10_000_000), (table, row)
        days = {day for (day,) in connection.execute("SELECT day FROM written_batches")}
        assert days == {time.time_ns() // 1_000_000 // DAY_MS}
        total = connection.execute("SELECT sum(count) FROM passage_counts").fetchone()
        assert total == (100,)
    blobs = connection.execute("SELECT count(*) FROM passages WHERE typeof(location) = 'blob'").fetchone()
    assert blobs == (0,)
    connection.close()
    raw = path.read_bytes()
    for magic in (b"\xff\xd8\xff", b"\x89PNG", b"RIFF"):
        assert magic not in raw
    assert len(raw) < 200_000, "100 passages take a few kilobytes"


def test_missing_postgresql_binaries_fail_the_tests_when_ci_requires_them(tmp_path: Path) -> None:
    assert postgres_bin(tmp_path / "no-postgresql") is None
    with pytest.raises(pytest.fail.Exception, match="requires the PostgreSQL tests"):
        postgres_missing({REQUIRE_ENV: "1"})
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        postgres_missing({})
    with pytest.raises(pytest.skip.Exception):
        postgres_missing({REQUIRE_ENV: "0"})
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text().splitlines()
    pytest_line = next(i for i, line in enumerate(ci) if line.startswith(".venv/bin/python -m pytest"))
    assert f"export {REQUIRE_ENV}=1" in ci[:pytest_line], ".ci/run must require PostgreSQL before pytest"


def test_logs_name_a_postgresql_database_without_its_password() -> None:
    assert (
        describe("postgresql://maskcam:s3cret@db.example.org/maskcam")
        == "postgresql://maskcam:***@db.example.org/maskcam"
    )
    assert describe("/var/lib/maskcam/history.sqlite3") == "/var/lib/maskcam/history.sqlite3"


@pytest.mark.parametrize(("first", "then"), [("passages", "counts"), ("counts", "passages")])
def test_switching_the_detail_mode_warns_that_the_other_modes_history_is_not_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, first: Detail, then: Detail
) -> None:
    path = str(tmp_path / "history.sqlite3")
    earlier = HistoryStore(path, first)
    earlier.open()
    now = round(time.time() * 1000)  # within --history-days: the writers' retention keeps them
    earlier.write("b", [record(now - 1000), record(now)])
    earlier.close()
    for detail, warned in ((first, False), (then, True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="server.history.service"):
            writer = open_writer(ServerConfig(history=path, history_detail=detail), ServerMetrics())
        assert writer is not None
        writer.stop()
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        if not warned:
            assert messages == []
            continue
        assert len(messages) == 1, messages
        assert f"--history-detail {first}" in messages[0] and "/api/summary" in messages[0]
        assert " 2 passages" in messages[0]


def poison(start_ms: int) -> PassageRecord:
    """A record that the database refuses (a NULL where the schema wants a label), as a bug could make."""
    return PassageRecord(**{**vars(record(start_ms)), "label": None})


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_refused_record_is_dropped_and_counted_and_the_rest_of_its_batch_written(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore(target)
    store.open()
    drops: list[int] = []
    writer = HistoryWriter(store, WriterSettings(batch_wait=0.05), lambda: drops.append(1))
    now = round(time.time() * 1000)
    for item in (record(now), poison(now + 1), record(now + 2)):  # queued first: one batch
        assert writer.submit(item)
    with caplog.at_level(logging.ERROR, logger="server.history.writer"):
        writer.start()
        assert writer.flush(10), "a refused record must not be retried forever"
    assert writer.dropped == len(drops) == 1 and writer.written == 2
    assert writer.failures == 0 and writer.refused is None
    assert any("refused a passage" in r.getMessage() for r in caplog.records)
    assert writer.submit(poison(now + 3)) and writer.flush(10), "a batch of one bad record is dropped too"
    assert writer.submit(record(now + 4)) and writer.flush(10), "and writing goes on"
    assert writer.dropped == 2 and writer.written == 3
    reader = HistoryStore(target)
    assert sorted(r.start_ms for r in reader.passages(PassageQuery())) == [now, now + 2, now + 4]
    reader.close()
    writer.stop()


def test_a_newer_schema_at_the_writers_first_open_stops_writing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "history.sqlite3")
    newer = HistoryStore(path)
    newer.open()
    with newer.engine.begin() as connection:
        connection.execute(sa.update(schema_table).values(version=SCHEMA_VERSION + 1))
    newer.close()
    store = HistoryStore(path)
    drops: list[int] = []
    writer = HistoryWriter(store, WriterSettings(batch_wait=0.05), lambda: drops.append(1), opened=False)
    now = round(time.time() * 1000)
    with caplog.at_level(logging.ERROR, logger="server.history.writer"):
        writer.start()
        for index in range(3):
            assert writer.submit(record(now + index))
        assert wait_until(lambda: writer.dropped == 3), "the queued passages are dropped, not retried"
    assert writer.refused is not None and "newer than this server" in writer.refused
    assert [r.getMessage() for r in caplog.records if "stops writing" in r.getMessage()] != []
    assert not writer.submit(record(now + 5)), "later passages are refused at once"
    assert writer.dropped == len(drops) == 4 and writer.written == 0 and writer.pending == 0
    writer.stop()


def test_a_schema_migrated_by_a_newer_server_mid_run_stops_writing(target: str) -> None:
    store = HistoryStore(target)
    store.open()
    writer = HistoryWriter(store, WriterSettings(batch_wait=0.05))
    writer.start()
    now = round(time.time() * 1000)
    assert writer.submit(record(now)) and writer.flush(10) and writer.written == 1
    other = HistoryStore(target)  # a newer server's migration: another table, a higher version
    with other.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE passages RENAME TO passages_v3"))
        connection.execute(sa.update(schema_table).values(version=SCHEMA_VERSION + 1))
    other.close()
    assert writer.submit(record(now + 1))
    assert wait_until(lambda: writer.refused is not None), "not retried forever"
    assert writer.flush(10) and writer.dropped == 1 and writer.written == 1
    assert "schema version" in str(writer.refused)
    writer.stop()


def test_the_docs_name_every_stored_column_and_the_location_rule_of_the_code() -> None:
    root = Path(__file__).resolve().parents[1]
    deploy = (root / "docs" / "DEPLOY.md").read_text()
    stored = deploy[deploy.index("- **What is stored, exactly**") : deploy.index("- **Switching")]
    for table in (passages_table, counts_table, batches_table, schema_table):
        assert f"`{table.name}`" in stored, table.name
        for stored_column in table.columns:
            name = stored_column.name
            assert f"`{name}`" in stored, f"DEPLOY.md does not say that {table.name}.{name} is stored"
    readme = (root / "README.md").read_text()
    summary = readme[: readme.index("![")]
    for column in ("id", "uid", "start_ms", "quarter", "seconds", "frames"):
        assert f"`{column}`" in summary, f"README's list of stored fields lacks {column}"
    api = (root / "docs" / "API.md").read_text()
    for column in ("id", "uid", "quarter"):
        assert f"`{column}`" in api
    pattern = location_pattern.pattern
    assert pattern in api and pattern in deploy, "the docs state server/location.py's character rule"
    assert parse_location("Gate_2") == "Gate_2" and "`_`" in api and "`_`" in deploy
    with pytest.raises(ValueError, match=" _ "):
        parse_location("_Gate")
