"""Agent states kept across restarts: one row per agent in `agent_states`, written off the event loop.

`AgentStateStore.save` only keeps the newest state per agent in memory; a writer task upserts what
changed every `flush_interval_s` in a worker thread. While the database is away the states wait in memory
(only the newest per agent) and are written once it is back; nothing that changes agents waits or fails
meanwhile.
"""

from __future__ import annotations

import asyncio
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
from ctid.db import Base, BatchWriter
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


class AgentStateStore(BatchWriter[dict[str, SavedAgentState]]):
    """Saves agents' states as they change and gives them back at the next start."""

    name = "agent_states"

    def __init__(
        self, engine: Engine, *, flush_interval_s: float = 0.2, retry_interval_s: float = 1.0
    ) -> None:
        super().__init__(engine, flush_interval_s=flush_interval_s, retry_interval_s=retry_interval_s)
        self._pending: dict[str, SavedAgentState] = {}
        self._table_ready = False
        self._table_lock = threading.Lock()  # load and a write may both be first to create the table

    @property
    def pending(self) -> int:
        """Agents whose newest state is not in the database yet."""
        return len(self._pending) + (len(self._in_flight) if self._in_flight is not None else 0)

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

    def _take(self) -> dict[str, SavedAgentState] | None:
        if not self._pending:
            return None
        batch, self._pending = self._pending, {}
        return batch

    def _give_back(self, batch: dict[str, SavedAgentState]) -> None:
        for agent_id, state in batch.items():
            self._pending.setdefault(agent_id, state)  # a newer state saved meanwhile wins

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

    def _write(self, batch: dict[str, SavedAgentState]) -> None:
        self._ensure_table()
        with self.engine.begin() as connection:
            _upsert(connection, [state_row(s) for s in batch.values()])
