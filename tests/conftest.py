"""Fixtures shared by every test package: a throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ctid.tooling.pgtemp import PostgresServer, PostgresUnavailable, throwaway_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; a test may stop and start it, and must leave it running."""
    try:
        with throwaway_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty PostgreSQL database on the session's server."""
    return postgres_server.create_database()
