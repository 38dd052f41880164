"""Fixtures shared by several test modules."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.mqtt_helpers import Broker, remove_broker, start_broker
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
    """Servers that tests start as `run_server.py` keep their history and their spool in temporary files,
    not in the checkout's data/ (a test that wants its own passes --history or --spool, which win over
    the variables)."""
    folder = tmp_path_factory.mktemp("history")
    files = {"MASKCAM_HISTORY": folder / "history.sqlite3", "MASKCAM_SPOOL": folder / "spool.sqlite3"}
    before = {name: os.environ.get(name) for name in files}
    os.environ.update({name: str(path) for name, path in files.items()})
    yield
    for name, value in before.items():
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


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
def broker() -> Iterator[Broker]:
    """A Mosquitto of the test's own on a free port (tests/mqtt_helpers.py), removed after it."""
    started = start_broker()
    try:
        yield started
    finally:
        remove_broker(started)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for tests that talk to a served app."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright for a browser test module (imported here only when a test asks for it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real server (`run_server.py` on a free port) shared by a browser test module."""
    from tests.browser_helpers import ServerProcess

    process = ServerProcess().start(tmp_path_factory.mktemp("server") / "server.log")
    yield process
    process.stop()
