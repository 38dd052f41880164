"""Fixtures shared by several test modules."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.postgres_helpers import (
    PostgresCluster,
    postgres_bin,
    postgres_missing,
    remove_cluster,
    start_cluster,
)

_DATABASES = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def history_outside_the_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers that tests start as `run_server.py` keep their history in a temporary file, not in the
    checkout's data/ (a test that wants its own passes --history, which wins over the variable)."""
    name = "MASKCAM_HISTORY"
    before = os.environ.get(name)
    os.environ[name] = str(tmp_path_factory.mktemp("history") / "history.sqlite3")
    yield
    if before is None:
        del os.environ[name]
    else:
        os.environ[name] = before


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole run (started only when a test asks for it)."""
    if postgres_bin() is None:
        postgres_missing(os.environ)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        remove_cluster(cluster)


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A new empty database in the session's cluster."""
    return postgres.create_database(f"history_{next(_DATABASES)}")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for tests that talk to a served app."""
    async with aiohttp.ClientSession() as session:
        yield session
