"""The customer's past calls: `CallFolder` folds the bus's call events into `customer_calls` rows (pure), and
`CustomerCallWriter` writes them off the event loop in a worker thread, keeping them in memory and trying
again while the database is away, so no row is lost.

A call is bound to a customer by its CTID_CUSTOMER variable; its rows (one per agent who took it, or one
with no agent) are ready when it ends. The folder also answers which agents are on, or lately had, a call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select

from ctid.customers.tables import CallDisposition, CustomerCall
from ctid.db import BatchWriter
from ctid.dialplan import CUSTOMER_VAR
from ctid.state import domain as d

RECENT_CALLS = 10_000  # ended calls remembered for their dispositions (a wrap-up comes after the end)


@dataclass
class _Part:
    agent: str
    queue: str
    wait_s: float
    connected_at: float
    talk_s: float | None = None  # set when the agent left


@dataclass
class _Call:
    server: str
    arrived_at: float
    customer: str = ""
    queue: str = ""
    ringing: set[str] = field(default_factory=set)
    parts: list[_Part] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CallRow:
    """One `customer_calls` row to write."""

    customer_id: str
    linkedid: str
    server: str
    arrived_at: float
    queue: str
    agent: str
    wait_s: float
    talk_s: float

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class CallFolder:
    """Folds call events (server origins only) into rows; `agent_of` names the agent at a device."""

    def __init__(self, agent_of: Callable[[str], str]) -> None:
        self.agent_of = agent_of
        self.calls: dict[tuple[str, str], _Call] = {}  # (server, linkedid) -> a live call
        # linkedid -> (customer, agents who took it) of ended calls, newest last
        self.recent: OrderedDict[str, tuple[str, frozenset[str]]] = OrderedDict()

    def apply(self, server: str, event: d.DomainEvent) -> list[CallRow]:
        """Fold one event; the rows of a call that ended with it."""
        key = (server, event.linkedid)
        if isinstance(event, d.CallArrived):
            self.calls.setdefault(key, _Call(server, event.at))
            return []
        call = self.calls.get(key)
        if call is None:
            if not event.linkedid or not isinstance(event, d.CallVariable | d.CallWaiting | d.AgentRinging):
                return []
            call = self.calls[key] = _Call(server, event.at)  # a call ctid saw only from here on
        if isinstance(event, d.CallVariable) and event.name == CUSTOMER_VAR:
            call.customer = event.value
        elif isinstance(event, d.CallWaiting):
            call.queue = event.queue
            call.arrived_at = min(call.arrived_at, event.arrived_at)
        elif isinstance(event, d.AgentRinging):
            call.ringing.add(self.agent_of(event.agent))
        elif isinstance(event, d.RingNoAnswer):
            call.ringing.discard(self.agent_of(event.agent))
        elif isinstance(event, d.CallConnected):
            agent = self.agent_of(event.agent)
            call.ringing.discard(agent)
            call.parts.append(_Part(agent, event.queue or call.queue, event.wait_s, event.at))
        elif isinstance(event, d.AgentLeftCall):
            agent = self.agent_of(event.agent)
            for part in call.parts:
                if part.agent == agent and part.talk_s is None:
                    part.talk_s = max(0.0, event.at - part.connected_at)
        elif isinstance(event, d.CallEnded):
            del self.calls[key]
            return self._ended(event.linkedid, call, event.at)
        return []

    def _ended(self, linkedid: str, call: _Call, at: float) -> list[CallRow]:
        self.recent[linkedid] = (call.customer, frozenset(p.agent for p in call.parts))
        while len(self.recent) > RECENT_CALLS:
            self.recent.popitem(last=False)
        if not call.customer:
            return []
        parts = call.parts or [_Part("", call.queue, max(0.0, at - call.arrived_at), at, 0.0)]
        return [
            CallRow(
                call.customer,
                linkedid,
                call.server,
                call.arrived_at,
                p.queue,
                p.agent,
                p.wait_s,
                max(0.0, at - p.connected_at) if p.talk_s is None else p.talk_s,
            )
            for p in parts
        ]

    def customers_of(self, agent: str) -> set[str]:
        """The customers of the live calls `agent` is ringing for or talking on."""
        return {
            call.customer
            for call in self.calls.values()
            if call.customer and (agent in call.ringing or any(p.agent == agent for p in call.parts))
        }

    def took(self, linkedid: str, agent: str) -> tuple[bool, str]:
        """Whether `agent` took the call (live or lately ended), and the call's customer ('' if unknown)."""
        for (_, live), call in self.calls.items():
            if live == linkedid:
                return any(p.agent == agent for p in call.parts), call.customer
        customer, agents = self.recent.get(linkedid, ("", frozenset()))
        return agent in agents, customer


class CustomerCallWriter(BatchWriter[list[CallRow]]):
    """Writes `customer_calls` rows in batches in a worker thread; rows wait in memory while the database
    refuses them and go at the next attempt, in order. Each row takes its disposition from
    `call_disposition` when the agent chose one before the row was written."""

    name = "customer_calls"

    def __init__(
        self, engine: Engine, *, flush_interval_s: float = 0.5, retry_interval_s: float = 2.0
    ) -> None:
        super().__init__(engine, flush_interval_s=flush_interval_s, retry_interval_s=retry_interval_s)
        self.pending: list[CallRow] = []

    def add(self, rows: Iterable[CallRow]) -> None:
        self.pending.extend(rows)

    def unwritten(self) -> list[CallRow]:
        """The rows not in the database yet (those being written included)."""
        return [*(self._in_flight or ()), *self.pending]

    def _take(self) -> list[CallRow] | None:
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        return batch

    def _give_back(self, batch: list[CallRow]) -> None:
        self.pending[:0] = batch  # before what came meanwhile: the rows go in order

    def _write(self, rows: list[CallRow]) -> None:
        with self.engine.begin() as connection:
            chosen = {
                (call, agent): code
                for call, agent, code in connection.execute(
                    select(CallDisposition.call, CallDisposition.agent, CallDisposition.code)
                    .where(CallDisposition.call.in_({r.linkedid for r in rows}))
                    .order_by(CallDisposition.at, CallDisposition.id)
                )
            }
            connection.execute(
                insert(CustomerCall),
                [{**r.values(), "disposition": chosen.get((r.linkedid, r.agent), "")} for r in rows],
            )
