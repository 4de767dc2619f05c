"""The screenpop component on customer events: a write to a customer reloads their data and pushes it to every
agent whose pop shows them, and a slow older load never overwrites a newer one."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, cast

from ctid.agents import AgentBook, AgentRecord
from ctid.clock import VirtualClock
from ctid.component import Context
from ctid.state import domain as d
from screenpop.component import POP_TOPIC, ScreenpopComponent
from tests.screenpop.test_pops import A, B, arrive, connect, ring


def component(load: Any) -> ScreenpopComponent:
    agents = AgentBook([AgentRecord("alice", A), AgentRecord("bob", B)])
    none = cast(Any, None)  # what the pop refresh does not touch
    ctx = Context(config=none, clock=VirtualClock(), bus=none, executor=none, engine=none, agents=agents)
    return ScreenpopComponent(ctx, load=load)


def note(customer: str = "gold") -> d.NoteAdded:
    return d.NoteAdded(9.0, "", customer, "L1", "alice", "alice-login", 7)


async def drain(pop: ScreenpopComponent) -> None:
    while pop._loads:
        await asyncio.gather(*pop._loads)


def notes_pushed(messages: list[str]) -> list[list[str]]:
    return [json.loads(m)["pop"]["data"]["customer"]["notes"] for m in messages]


async def test_a_note_by_one_agent_refreshes_every_open_pop_of_that_customer() -> None:
    written: list[str] = []

    def load(engine: Any, customer: str, number: str) -> dict[str, Any]:
        return {"customer": {"id": "gold", "notes": list(written)}, "found_by": "customer-id"}

    pop = component(load)
    alice, bob = pop.hub.subscribe(POP_TOPIC + "alice"), pop.hub.subscribe(POP_TOPIC + "bob")
    arrive(pop.book, "L1")
    arrive(pop.book, "L2")  # the same customer calling again, ringing bob
    for event in (connect("L1", A), ring("L2", B)):
        pop.on_event("pbx1", event)
    assert [json.loads(m)["kind"] for m in iter(alice.next_nowait, None)] == ["PopOpened", "PopUpdated"]
    assert [json.loads(m)["kind"] for m in iter(bob.next_nowait, None)] == ["PopOpened"]
    written.append("Wants the yearly plan")
    pop.on_event("customers", note())
    await drain(pop)
    assert notes_pushed(list(iter(alice.next_nowait, None))) == [["Wants the yearly plan"]]
    assert notes_pushed(list(iter(bob.next_nowait, None))) == [["Wants the yearly plan"]]
    pop.on_event("customers", note("plain"))
    await drain(pop)
    assert alice.next_nowait() is None and bob.next_nowait() is None


async def test_an_older_load_that_ends_last_is_dropped() -> None:
    gate = threading.Event()
    loads: list[str] = []

    def load(engine: Any, customer: str, number: str) -> dict[str, Any]:
        loads.append(customer)
        if len(loads) == 1:  # the first write's load is slow: it ends after the second's
            gate.wait(5)
            return {"customer": {"id": "gold", "notes": ["old"]}}
        gate.set()
        return {"customer": {"id": "gold", "notes": ["old", "new"]}}

    pop = component(load)
    arrive(pop.book, "L1")
    pop.on_event("pbx1", connect("L1", A))
    pop.on_event("customers", note())
    while not loads:  # the first write's load is under way before the second write
        await asyncio.sleep(0.001)
    pop.on_event("customers", note())
    await drain(pop)
    assert len(loads) == 2 and gate.is_set()
    shown = pop.book.current(A)
    assert shown is not None and shown.data == {"customer": {"id": "gold", "notes": ["old", "new"]}}
