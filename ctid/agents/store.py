"""Agent states kept across restarts: one row per agent in `agent_states`, written off the event loop.

`AgentStateStore.save` only keeps the newest state per agent in memory; a writer task upserts what
changed every `flush_interval_s` in a worker thread. While the database is away the states wait in memory
(only the newest per agent) and are written once it is back; nothing that changes agents waits or fails
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, Double, Engine, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from ctid.agents.book import SavedAgentState
from ctid.agents.state import agent_state
from ctid.db import Base
from ctid.errors import CtidError

log = structlog.get_logger("ctid.agents.store")


class AgentStateRow(Base):
    """An agent's last state as the agent book knew it (SavedAgentState)."""

    __tablename__ = "agent_states"

    agent_id: Mapped[str] = mapped_column(String, primary_key=True)
    device: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)  # AgentState value (older rows: ctid.agents.state.LEGACY)
    since: Mapped[float] = mapped_column(Double)  # epoch seconds
    pause_reason: Mapped[str] = mapped_column(String)
    wrap_until: Mapped[float | None] = mapped_column(Double)
    call: Mapped[str] = mapped_column(String)  # linkedid while reserved, ringing, on call or on hold
    resume: Mapped[str] = mapped_column(String)  # the state after the call
    resume_reason: Mapped[str] = mapped_column(String)


def state_row(state: SavedAgentState) -> dict[str, Any]:
    return {
        "agent_id": state.agent_id,
        "device": state.device,
        "status": state.status.value,
        "since": state.since,
        "pause_reason": state.pause_reason,
        "wrap_until": state.wrap_until,
        "call": state.call,
        "resume": state.resume.value,
        "resume_reason": state.resume_reason,
    }


def saved_from_row(row: Mapping[str, Any]) -> SavedAgentState | None:
    """A stored row as a saved state (old values too); None for a status this version does not know."""
    try:
        status, resume = agent_state(row["status"]), agent_state(row["resume"])
    except ValueError:
        return None
    return SavedAgentState(
        row["agent_id"],
        row["device"],
        status,
        float(row["since"]),
        row["pause_reason"],
        None if row["wrap_until"] is None else float(row["wrap_until"]),
        row["call"],
        resume,
        row["resume_reason"],
    )


def _upsert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    name = connection.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise CtidError(f"agent states are kept in SQLite or PostgreSQL, not {name}")
    statement = (sqlite if name == "sqlite" else postgresql).insert(AgentStateRow)
    updates = {c: statement.excluded[c] for c in rows[0] if c != "agent_id"}
    connection.execute(statement.on_conflict_do_update(index_elements=["agent_id"], set_=updates), rows)


class AgentStateStore:
    """Saves agents' states as they change and gives them back at the next start."""

    def __init__(
        self, engine: Engine, *, flush_interval_s: float = 0.2, retry_interval_s: float = 1.0
    ) -> None:
        self.engine = engine
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self._pending: dict[str, SavedAgentState] = {}
        self._table_ready = False
        self._table_lock = threading.Lock()  # load and a write may both be first to create the table
        self._in_flight = 0
        self._failing = False
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()  # one write at a time, so an older state never lands after a newer one

    @property
    def pending(self) -> int:
        """Agents whose newest state is not in the database yet."""
        return len(self._pending) + self._in_flight

    def save(self, states: Iterable[SavedAgentState]) -> None:
        """Keep the newest state of each agent for the writer: no I/O, so nothing waits for the database."""
        for state in states:
            self._pending[state.agent_id] = state

    async def load(self) -> dict[str, SavedAgentState] | None:
        """The saved states by agent id; None (after a warning) when the database cannot be read."""
        try:
            return await asyncio.to_thread(self._load)
        except SQLAlchemyError as exc:
            log.warning("agent_states_unreadable", error=type(exc).__name__)
            return None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="agent-states")

    async def flush(self) -> bool:
        """Write what is pending now; False if the database refused (it stays pending)."""
        async with self._lock:
            return await self._flush()

    async def _flush(self) -> bool:
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        self._in_flight = len(batch)
        try:
            await asyncio.to_thread(self._write, list(batch.values()))
        except SQLAlchemyError as exc:
            for agent_id, state in batch.items():
                self._pending.setdefault(agent_id, state)  # a newer state saved meanwhile wins
            if not self._failing:
                log.warning("agent_states_save_failed", error=type(exc).__name__, agents=len(self._pending))
            self._failing = True
            self._retry_at = asyncio.get_running_loop().time() + self.retry_interval_s
            return False
        finally:
            self._in_flight = 0
        if self._failing:
            log.info("agent_states_saved_again", agents=len(batch))
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
            if self._pending and loop.time() >= self._retry_at:
                try:
                    await self.flush()
                except Exception:  # a bug in one write must not stop saving for the rest of the run
                    log.exception("agent_states_writer_failed")

    # ---- worker-thread side ---------------------------------------------------------------------------

    def _ensure_table(self) -> None:
        with self._table_lock:
            if not self._table_ready:
                Base.metadata.create_all(self.engine, tables=[AgentStateRow.__table__])  # type: ignore[list-item]
                self._table_ready = True

    def _load(self) -> dict[str, SavedAgentState]:
        self._ensure_table()
        out: dict[str, SavedAgentState] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(select(AgentStateRow.__table__)).mappings():
                state = saved_from_row(dict(row))
                if state is None:
                    log.warning("agent_state_unknown", agent=row["agent_id"], status=row["status"])
                else:
                    out[state.agent_id] = state
        return out

    def _write(self, states: list[SavedAgentState]) -> None:
        self._ensure_table()
        with self.engine.begin() as connection:
            _upsert(connection, [state_row(s) for s in states])
