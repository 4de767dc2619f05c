"""The SQLAlchemy 2 declarative base every ctid table shares, the engine factory, and the background
writer that components keep their rows with (`BatchWriter`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
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


B = TypeVar("B")  # a batch of what a writer keeps
log = structlog.get_logger("ctid.db")


class BatchWriter(Generic[B]):
    """Writes what a component hands it in batches, in a worker thread, every `flush_interval_s`; one write
    at a time, so an older batch never lands after a newer one. While the database refuses, the batch
    waits in memory and goes again `retry_interval_s` later; nothing on the event loop waits for it.

    A subclass keeps its own pending batch: `_take` hands it over (None when empty), `_give_back` takes a
    refused one back (merged with what came meanwhile), `_write` writes one in the worker thread.
    """

    name = "rows"  # for the task and the log lines: `<name>_save_failed`, `<name>_saved_again`

    def __init__(self, engine: Engine, *, flush_interval_s: float, retry_interval_s: float) -> None:
        self.engine = engine
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self._in_flight: B | None = None  # the batch being written
        self._failing = False
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    def _take(self) -> B | None:
        raise NotImplementedError

    def _give_back(self, batch: B) -> None:
        raise NotImplementedError

    def _write(self, batch: B) -> None:
        raise NotImplementedError

    @staticmethod
    def _size(batch: B) -> int:
        return len(batch)  # type: ignore[arg-type]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def flush(self) -> bool:
        """Write what is pending now; False if the database refused (it stays pending)."""
        async with self._lock:
            batch = self._take()
            if batch is None:
                return True
            self._in_flight = batch
            try:
                await asyncio.to_thread(self._write, batch)
            except SQLAlchemyError as exc:
                self._give_back(batch)
                if not self._failing:
                    log.warning(f"{self.name}_save_failed", error=type(exc).__name__, batch=self._size(batch))
                self._failing = True
                self._retry_at = asyncio.get_running_loop().time() + self.retry_interval_s
                return False
            finally:
                self._in_flight = None
            if self._failing:
                log.info(f"{self.name}_saved_again", batch=self._size(batch))
                self._failing = False
            return True

    async def close(self) -> None:
        """Stop the writer after a last attempt to write what is pending."""
        if self._task is not None:
            self._stop.set()  # not cancelled: a write under way finishes first
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.flush_interval_s)
            if loop.time() >= self._retry_at:
                try:
                    await self.flush()
                except Exception:  # a bug in one write must not stop saving for the rest of the run
                    log.exception(f"{self.name}_writer_failed")
