"""An agent ends wrap-up early: once the disposition is chosen, "ready" from wrap-up is theirs to set."""

from __future__ import annotations

from ctid.agents import AgentState
from ctid.state import domain as d
from tests.agents.test_book import book, status


def test_an_agent_in_wrap_up_may_go_ready_before_it_runs_out() -> None:
    b = book(wrap_up_s=60)
    b.set_state("a1", AgentState.READY, now=0)
    b.apply(d.CallConnected(12, "L1", "PJSIP/1001", "PJSIP/1001-1", "sales", 5.0), 12)
    b.apply(d.AgentLeftCall(100, "L1", "PJSIP/1001"), 100)
    assert status(b, "a1") is AgentState.WRAP_UP and b.agents["a1"].wrap_until == 160
    b.set_state("a1", AgentState.READY, now=110)
    agent = b.agents["a1"]
    assert (agent.status, agent.since, agent.wrap_until) == (AgentState.READY, 110, None)
    b.tick(170)  # the wrap-up that would have run out changes nothing now
    assert status(b, "a1") is AgentState.READY and b.agents["a1"].since == 110
