"""The SQLAlchemy 2 declarative base every ctid table shares, and the engine factory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import StaticPool


class Base(DeclarativeBase):
    """Root of ctid's ORM models; `Base.metadata` holds every table."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys unless asked, per connection; PostgreSQL always enforces them.
    cursor.execute("PRAGMA foreign_keys=ON")
    # A report reading a month must not hold up the log's writer (nor the writer a report): write-ahead
    # logging lets readers and the writer work at once; NORMAL sync is safe with it (a power cut may lose
    # the last commits, never corrupt the file). 64 MB of page cache keeps the log's indexes in memory.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL and a larger cache, an in-memory one a single
    shared connection.

    The shared connection keeps one in-memory database alive across sessions (tests use `sqlite://`).
    """
    kwargs: dict[str, Any] = {}
    if url in ("sqlite://", "sqlite:///:memory:"):
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(url, echo=echo, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
