"""The agents component: the book's changes go to the bus (origin `agents`) and to browsers (the agent's own
topic and the supervisors'), states saved before a restart come back at start, and the first resync settles
agents restored on a call."""

from __future__ import annotations

from pathlib import Path

from ctid.agents import AgentBook, AgentRecord, AgentState, SavedAgentState
from ctid.agents.component import AgentsComponent
from ctid.agents.store import AgentStateStore
from ctid.bus import AGENTS, EventBus
from ctid.clock import VirtualClock
from ctid.db import make_engine
from ctid.push import PushHub
from ctid.state import CallStateModel

NOW = 1_795_420_800.0


def component(tmp_path: Path, servers: tuple[str, ...] = ()) -> tuple[AgentsComponent, list[tuple[str, str]]]:
    book = AgentBook([AgentRecord("a1", "PJSIP/1001", since=NOW), AgentRecord("a2", "PJSIP/1002", since=NOW)])
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda origin, event: seen.append((origin, getattr(event, "state", ""))))
    store = AgentStateStore(make_engine(f"sqlite:///{tmp_path}/ctid.db"))
    agents = AgentsComponent(book, store, bus, VirtualClock(NOW), servers)
    agents.push_to(PushHub())
    return agents, seen


def test_a_change_goes_to_the_bus_the_agents_topic_and_the_supervisors(tmp_path: Path) -> None:
    agents, seen = component(tmp_path)
    assert agents.hub is not None
    mine, other, supervisor = (agents.hub.subscribe(t) for t in ("agent:a1", "agent:a2", "supervisor"))
    first = mine.next_nowait()  # the agent's state, at once
    assert first is not None and '"status": "logged_out"' in first
    agents.book.set_state("a1", AgentState.READY, NOW + 1)
    agents.flush()
    assert seen == [(AGENTS, "ready")]
    pushed = mine.next_nowait()
    assert pushed is not None and '"state": "ready"' in pushed and '"agent": "a1"' in pushed
    assert supervisor.next_nowait() == pushed
    assert other.next_nowait() is not None  # a2's own snapshot
    assert other.next_nowait() is None  # and nothing of a1's
    agents.flush()
    assert seen == [(AGENTS, "ready")]  # a flush publishes each change once


async def test_saved_states_come_back_and_a_call_nobody_confirms_is_released(tmp_path: Path) -> None:
    agents, _ = component(tmp_path)
    await agents.store.load()
    agents.store.start()
    agents.store.save(
        [
            SavedAgentState("a1", "PJSIP/1001", AgentState.PAUSED, NOW - 60, pause_reason="break"),
            SavedAgentState("a2", "PJSIP/1002", AgentState.ON_CALL_INBOUND, NOW - 30, call="L1"),
        ]
    )
    await agents.close()
    again, seen = component(tmp_path, servers=("pbx1",))
    await again.start()
    book = again.book.agents
    assert (book["a1"].status, book["a1"].pause_reason) == (AgentState.PAUSED, "break")
    assert (book["a2"].status, book["a2"].call) == (AgentState.ON_CALL_INBOUND, "L1")  # until the resync
    again.synced("pbx1", {"pbx1": CallStateModel()})  # pbx1's phones: none on a call
    assert book["a2"].status is AgentState.READY and book["a2"].call == ""
    assert (AGENTS, "ready") in seen
    await again.close()


def test_only_the_first_resync_of_each_server_settles_restored_calls(tmp_path: Path) -> None:
    agents, _ = component(tmp_path, servers=("pbx1",))
    agents.synced("pbx1", {"pbx1": CallStateModel()})
    agents.book.unconfirmed.add("a1")
    agents.synced("pbx1", {"pbx1": CallStateModel()})  # a reconnect later: no longer a restart's resync
    assert agents.book.unconfirmed == {"a1"}
