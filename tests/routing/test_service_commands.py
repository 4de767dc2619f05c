"""RoutingService decides, the executor acts: a refused offer is undone, logged with Asterisk's words."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from ctid.agents import AgentBook, AgentState
from ctid.bus import ROUTING
from ctid.clock import VirtualClock
from ctid.commands import Command, OfferCall
from ctid.executor import CommandFailed, CommandResult, CommandSucceeded
from ctid.state import domain as d
from routing.config import load_routing
from routing.service import RoutingService

ROUTING_YAML = """\
queues:
  sales: {skills: {sales: 1}, ring_timeout_s: 15, wrap_up_s: 30}
agents:
  - {id: alice, name: Alice, device: PJSIP/1001, skills: {sales: 8}, queues: [sales]}
"""
CALLER = "PJSIP/trunk-00000001"


def arrivals(linkedid: str, at: float) -> list[d.DomainEvent]:
    return [
        d.CallArrived(at, linkedid, linkedid, CALLER, d.Direction.INBOUND, "0612", "", "800"),
        d.CallWaiting(at, linkedid, linkedid, "sales", at, requeued=False),
    ]


async def test_an_offer_asterisk_refuses_is_undone_and_logged_with_its_message(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_YAML)
    sent: list[tuple[str, Command]] = []

    async def execute(server: str, command: Command) -> CommandResult:
        sent.append((server, command))
        if len(sent) == 1:  # the first offer: the caller hung up meanwhile, say
            return CommandFailed(command, server, "Redirect", "Channel does not exist: " + CALLER)
        return CommandSucceeded(command, server)

    clock = VirtualClock(1000.0)
    routing = RoutingService(load_routing(path), AgentBook([]), execute, clock)
    routing.set_agent_state("alice", AgentState.READY)
    with capture_logs() as logs:
        for event in arrivals("L1", 1000.0):
            routing.on_event("pbx1", event)
        for _ in range(50):  # the pass, the refused offer, the pass it kicks, the next offer
            if len(sent) >= 2:
                break
            await asyncio.sleep(0)
        await asyncio.gather(*routing._tasks)
    first, again = sent
    assert isinstance(first[1], OfferCall) and first[1] == again[1]  # undone, so offered again
    assert first[1].agent_id == "alice" and first[1].linkedid == "L1" and first[0] == "pbx1"
    failed = [e for e in logs if e["event"] == "routing_command_failed"]
    assert failed and failed[0]["error"] == "Channel does not exist: " + CALLER
    assert failed[0]["reason"] == "refused" and failed[0]["linkedid"] == "L1"
    assert routing.book.agents["alice"].status is AgentState.RESERVED  # by the second offer only


def test_events_from_a_component_never_say_which_server_a_call_is_on(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_YAML)

    async def execute(server: str, command: Command) -> CommandResult:
        raise AssertionError("nothing is sent without a loop")

    routing = RoutingService(load_routing(path), AgentBook([]), execute, VirtualClock(1000.0))
    routing.on_event("pbx1", arrivals("L1", 1000.0)[0])
    routing.on_event(
        ROUTING,
        d.AgentStateChanged(
            1000.0, "L1", agent="alice", device="PJSIP/1001", state="on_call", reason="", previous=""
        ),
    )
    routing.on_event("", d.WorkItemMarked(1000.0, "L1", action="handled"))
    assert routing.server_of == {"L1": "pbx1"}
