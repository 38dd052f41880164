"""History reads run apart from the default executor and give up on a database that hangs."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa

from server.history.service import HistoryBusy, ReadPool
from server.history.store import engine_for


async def test_reads_beyond_the_pool_and_its_queue_are_refused_at_once() -> None:
    pool = ReadPool()
    release = threading.Event()
    try:
        held = [
            asyncio.ensure_future(pool.run(release.wait, 10.0))
            for _ in range(pool.THREADS + pool.MAX_WAITING)
        ]
        await asyncio.sleep(0.1)
        with pytest.raises(HistoryBusy):
            await pool.run(lambda: 1)
        # The default executor is not theirs: it still runs at once.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 2.0) == "free"
        release.set()
        assert all(await asyncio.gather(*held))
        assert await pool.run(lambda: 2) == 2
    finally:
        release.set()
        pool.close()


def test_a_postgresql_statement_ends_after_the_timeout(postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SHOW statement_timeout")).scalar() == "10s"
    finally:
        engine.dispose()
