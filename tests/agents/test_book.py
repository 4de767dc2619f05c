"""The agent book: what agents set, what their calls do to them, occupancy, the device cross-check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.agents import OCCUPIED, AgentBook, AgentRecord, AgentState, AgentStateError
from ctid.state import domain as d


def book(wrap_up_s: float = 30.0) -> AgentBook:
    agents = [
        AgentRecord("a1", "PJSIP/1001", queues=("sales",)),
        AgentRecord("a2", "PJSIP/1002", queues=("sales",)),
    ]
    return AgentBook(agents, window_s=3600.0, wrap_up_s=wrap_up_s)


def status(b: AgentBook, agent_id: str) -> AgentState:
    return b.agents[agent_id].status


def test_a_call_moves_an_agent_through_reserved_ringing_on_call_hold_wrap_up_and_back_to_ready() -> None:
    b = book(wrap_up_s=20)
    b.set_state("a1", AgentState.READY, now=0)
    b.reserve("a1", "routing", "L1", now=10)
    assert status(b, "a1") is AgentState.RESERVED and b.agents["a1"].call == "L1"
    b.apply(d.AgentRinging(11, "L1", "u", "PJSIP/1001", "PJSIP/1001-1", "sales"), 11)
    assert status(b, "a1") is AgentState.RINGING and b.agents["a1"].call == "L1"
    b.apply(d.CallConnected(12, "L1", "PJSIP/1001", "PJSIP/1001-1", "sales", 5.0), 12)
    assert status(b, "a1") is AgentState.ON_CALL_INBOUND
    b.apply(d.CallHeld(30, "L1", "PJSIP/1001-1"), 30)
    assert status(b, "a1") is AgentState.ON_HOLD
    b.apply(d.CallResumed(40, "L1", "PJSIP/1001-1", 10.0), 40)
    assert status(b, "a1") is AgentState.ON_CALL_INBOUND
    b.apply(d.AgentLeftCall(100, "L1", "PJSIP/1001"), 100)
    assert status(b, "a1") is AgentState.WRAP_UP and b.agents["a1"].wrap_until == 120
    b.tick(119)
    assert status(b, "a1") is AgentState.WRAP_UP
    b.tick(121)
    assert status(b, "a1") is AgentState.READY and b.agents["a1"].since == 120


def test_ring_no_answer_pauses_the_agent_with_reason_no_answer() -> None:
    b = book()
    b.set_state("a1", AgentState.READY, now=0)
    b.reserve("a1", "routing", "L1", now=5)
    b.apply(d.RingNoAnswer(20, "L1", "PJSIP/1001", "NOANSWER", 15.0), 20)
    agent = b.agents["a1"]
    assert (agent.status, agent.pause_reason, agent.call) == (AgentState.PAUSED, "no-answer", "")


def test_a_reserved_agent_is_freed_when_the_caller_abandons() -> None:
    b = book()
    b.set_state("a1", AgentState.READY, now=0)
    b.reserve("a1", "routing", "L1", now=5)
    b.apply(d.CallAbandoned(7, "L1", "sales", 12.0, True), 7)
    assert status(b, "a1") is AgentState.READY


def test_agents_set_ready_pause_and_logout_but_not_while_on_a_call() -> None:
    b = book()
    with pytest.raises(AgentStateError):
        b.set_state("a1", AgentState.PAUSED, now=0)  # a pause needs a reason
    b.set_state("a1", AgentState.PAUSED, now=0, reason="lunch")
    assert b.agents["a1"].pause_reason == "lunch"
    b.set_state("a1", AgentState.READY, now=1)
    b.reserve("a1", "routing", "L1", now=2)
    with pytest.raises(AgentStateError):
        b.set_state("a1", AgentState.LOGGED_OUT, now=3)
    with pytest.raises(AgentStateError):
        b.set_state("a1", AgentState.ON_CALL_INBOUND, now=3)
    with pytest.raises(AgentStateError):
        b.set_state("nobody", AgentState.READY, now=3)


def test_an_agent_busy_on_a_personal_call_is_not_offered_calls() -> None:
    b = book()
    b.set_state("a1", AgentState.READY, now=0)
    b.apply(d.AgentDeviceChanged(1, "", "PJSIP/1001", "INUSE"), 1)
    view = {v.agent_id: v for v in b.views(2)}["a1"]
    assert view.status is AgentState.ON_CALL_INBOUND
    assert b.agents["a1"].to_dict(2)["personal_call"] is True
    assert b.views(2, offerable_only=True) == ()  # what routing is given: nobody to offer a call to
    b.apply(d.AgentDeviceChanged(3, "", "PJSIP/1001", "NOT_INUSE"), 3)
    assert {v.agent_id: v for v in b.views(4)}["a1"].status is AgentState.READY
    b.set_state("a2", AgentState.PAUSED, now=4, reason="break")
    assert [v.agent_id for v in b.views(5, offerable_only=True)] == ["a1"]


def test_occupancy_counts_talk_hold_and_wrap_against_ready_time_and_ignores_pauses() -> None:
    b = book(wrap_up_s=60)
    b.set_state("a1", AgentState.READY, now=0)  # ready 0-100
    b.reserve("a1", "routing", "L1", now=100)
    b.apply(d.CallConnected(100, "L1", "PJSIP/1001", "c", "sales", 0.0), 100)  # talk 100-340
    b.apply(d.AgentLeftCall(340, "L1", "PJSIP/1001"), 340)  # wrap 340-400
    b.tick(400)
    b.set_state("a1", AgentState.PAUSED, now=500, reason="break")  # ready 400-500, then paused
    # working 300 s of 500 s logged-in, non-paused time; the pause is left out
    assert b.occupancy(b.agents["a1"], now=2000) == pytest.approx(300 / 500)
    # the sliding window (3600 s) forgets the oldest time
    b.set_state("a1", AgentState.READY, now=5000)
    assert b.occupancy(b.agents["a1"], now=5500) == 0.0


def test_a_direct_call_to_a_logged_out_or_paused_agent_returns_them_to_that_state() -> None:
    book = AgentBook([AgentRecord("a", "PJSIP/1001"), AgentRecord("b", "PJSIP/1002")], wrap_up_s=5)
    book.set_state("b", AgentState.PAUSED, 0.0, "break")
    for agent, device in (("a", "PJSIP/1001"), ("b", "PJSIP/1002")):
        book.apply(d.CallConnected(1.0, f"call-{agent}", "u", device, f"{device}-1", ""), 1.0)
        book.apply(d.AgentLeftCall(9.0, f"call-{agent}", device), 9.0)
    book.tick(20.0)
    assert book.agents["a"].status is AgentState.LOGGED_OUT
    assert (book.agents["b"].status, book.agents["b"].pause_reason) == (AgentState.PAUSED, "break")
    book.set_state("a", AgentState.READY, 21.0)
    book.reserve("a", "routing", "call-c", 22.0)
    book.apply(d.CallConnected(23.0, "call-c", "u", "PJSIP/1001", "PJSIP/1001-2", "q"), 23.0)
    book.apply(d.AgentLeftCall(30.0, "call-c", "PJSIP/1001"), 30.0)
    book.tick(40.0)
    assert book.agents["a"].status is AgentState.READY  # a routed call ends in ready, as before


def test_calls_handled_counts_each_connected_call_for_fewest_calls() -> None:
    b = book(wrap_up_s=0)
    b.set_state("a1", AgentState.READY, now=0)
    for n, at in enumerate((10.0, 100.0), start=1):
        b.reserve("a1", "routing", f"L{n}", now=at)
        b.apply(d.CallConnected(at + 1, f"L{n}", "PJSIP/1001", "c", "sales", 1.0), at + 1)
        b.apply(d.AgentLeftCall(at + 50, f"L{n}", "PJSIP/1001"), at + 50)
        b.tick(at + 50)
    views = {v.agent_id: v for v in b.views(200)}
    assert (views["a1"].calls_handled, views["a2"].calls_handled) == (2, 0)


def naive_occupancy(b: AgentBook, agent_id: str, now: float) -> float:
    """Occupancy summed over every remembered interval, as first written (no running totals)."""
    agent = b.agents[agent_id]
    start = now - b.window_s
    spans = list(agent.history)
    if agent.status is AgentState.READY or agent.status in OCCUPIED:
        spans.append((agent.since, now, agent.status in OCCUPIED))
    working = idle = 0.0
    for begin, end, is_working in spans:
        length = max(0.0, min(end, now) - max(begin, start))
        if is_working:
            working += length
        else:
            idle += length
    return working / (working + idle) if working + idle > 0 else 0.0


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0.5, 900), st.sampled_from(["call", "pause", "ready"])), max_size=40)
)
def test_occupancy_from_running_totals_matches_summing_the_window(steps: list[tuple[float, str]]) -> None:
    b = AgentBook([AgentRecord("a1", "PJSIP/1001")], window_s=1800.0, wrap_up_s=30.0)
    now = 0.0
    b.set_state("a1", AgentState.READY, now)
    for n, (gap, step) in enumerate(steps):
        now += gap
        b.tick(now)
        agent = b.agents["a1"]
        if step == "call" and agent.status is AgentState.READY:
            b.reserve("a1", "routing", f"L{n}", now)
            b.apply(d.CallConnected(now + 1, f"L{n}", "PJSIP/1001", "c", "q", 1.0), now + 1)
            now += 1 + gap / 2
            b.apply(d.AgentLeftCall(now, f"L{n}", "PJSIP/1001"), now)
        elif step == "pause" and agent.status is AgentState.READY:
            b.set_state("a1", AgentState.PAUSED, now, "break")
        elif step == "ready" and agent.status is AgentState.PAUSED:
            b.set_state("a1", AgentState.READY, now)
        for later in (now, now + 10.0, now + 1000.0):
            assert b.occupancy(b.agents["a1"], later) == pytest.approx(
                naive_occupancy(b, "a1", later), abs=1e-9
            )
