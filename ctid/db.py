"""The SQLAlchemy 2 declarative base every ctid table shares, and the engine factory."""

from __future__ import annotations

import os
from pathlib import Path
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


class DatabaseFileWatch:
    """Notices a SQLite file replaced or removed under ctid: open connections would go on writing to the
    old inode (a deleted file, or one no longer at the path), and every row written there would be lost.

    `settle()` takes the file as it is now; `changed()` then says 'removed' or 'replaced', or '' while it is
    the same file. Other databases, and SQLite in memory, never change.
    """

    def __init__(self, engine: Engine) -> None:
        url = engine.url
        database = url.database if url.get_backend_name() == "sqlite" else None
        self.path = Path(database) if database not in (None, "", ":memory:") else None
        self._identity: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (found.st_dev, found.st_ino)

    def settle(self) -> None:
        self._identity = self._stat()

    def changed(self) -> str:
        if self.path is None or self._identity is None:
            return ""
        now = self._stat()
        if now == self._identity:
            return ""
        return "removed" if now is None else "replaced"
