"""Fixtures shared by several test modules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.postgres_helpers import PostgresCluster, postgres_bin, remove_cluster, start_cluster

_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole run (started only when a test asks for it)."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql package; .ci/run installs it)")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        remove_cluster(cluster)


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A new empty database in the session's cluster."""
    return postgres.create_database(f"history_{next(_DATABASES)}")
