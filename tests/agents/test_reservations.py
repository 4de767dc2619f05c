"""Reservations: one component at a time takes an agent for a call, until it is released or moves on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ctid.agents import AgentBook, AgentRecord, AgentState, Reservation
from ctid.state import domain as d


def book() -> AgentBook:
    b = AgentBook([AgentRecord("a1", "PJSIP/1001"), AgentRecord("a2", "PJSIP/1002")], wrap_up_s=10.0)
    b.set_state("a1", AgentState.READY, 0.0)
    return b


def ringing(at: float, linkedid: str, device: str = "PJSIP/1001") -> d.AgentRinging:
    return d.AgentRinging(at, linkedid, "u", device, f"{device}-1", "sales")


def test_two_owners_race_for_one_agent_and_exactly_one_wins() -> None:
    b = book()
    first = b.reserve("a1", "routing", "L1", 5.0)
    assert first == Reservation("a1", "routing", "L1", 5.0)
    assert b.reserve("a1", "dialer", "L2", 5.0) is None
    assert b.reserve("a1", "routing", "L3", 6.0) is None  # not twice by the same owner either
    agent = b.agents["a1"]
    assert (agent.status, agent.call, agent.reservation) == (AgentState.RESERVED, "L1", first)


@given(owners=st.lists(st.sampled_from(["routing", "dialer", "screenpop"]), min_size=1, max_size=8))
def test_whatever_the_order_only_the_first_reservation_of_a_ready_agent_holds(owners: list[str]) -> None:
    b = book()
    won = [o for n, o in enumerate(owners) if b.reserve("a1", o, f"L{n}", 1.0 + n) is not None]
    assert won == owners[:1]
    assert b.agents["a1"].reservation is not None and b.agents["a1"].reservation.owner == owners[0]


def test_only_a_ready_agent_not_on_a_personal_call_can_be_reserved() -> None:
    b = book()
    assert b.reserve("a2", "routing", "L1", 1.0) is None  # logged out
    assert b.reserve("nobody", "routing", "L1", 1.0) is None
    b.set_state("a2", AgentState.PAUSED, 1.0, "break")
    assert b.reserve("a2", "routing", "L1", 2.0) is None
    b.apply(d.AgentDeviceChanged(3.0, "", "PJSIP/1001", "INUSE"), 3.0)
    assert b.reserve("a1", "dialer", "L1", 4.0) is None
    b.apply(d.AgentDeviceChanged(5.0, "", "PJSIP/1001", "NOT_INUSE"), 5.0)
    assert b.reserve("a1", "dialer", "L1", 6.0) is not None


def test_release_makes_the_agent_ready_and_reservable_again() -> None:
    b = book()
    b.reserve("a1", "routing", "L1", 5.0)
    assert not b.release("a1", "L-other", 6.0)  # not the call it holds
    assert b.release("a1", "L1", 6.0)
    agent = b.agents["a1"]
    assert (agent.status, agent.call, agent.reservation, agent.since) == (AgentState.READY, "", None, 6.0)
    assert not b.release("a1", "L1", 7.0)  # already released
    assert b.reserve("a1", "dialer", "L2", 7.0) == Reservation("a1", "dialer", "L2", 7.0)


def test_a_reservation_for_a_caller_who_hangs_up_is_released() -> None:
    b = book()
    b.reserve("a1", "routing", "L1", 5.0)
    b.apply(ringing(6.0, "L1"), 6.0)
    b.apply(d.CallAbandoned(7.0, "L1", "sales", 12.0, True), 7.0)
    agent = b.agents["a1"]
    assert (agent.status, agent.call, agent.reservation) == (AgentState.READY, "", None)
    assert b.reserve("a1", "dialer", "L2", 8.0) is not None


def test_the_reservation_rings_then_connects_and_is_over() -> None:
    b = book()
    reservation = b.reserve("a1", "dialer", "L1", 5.0)
    b.apply(ringing(6.0, "L1"), 6.0)
    agent = b.agents["a1"]
    assert (agent.status, agent.reservation) == (AgentState.RINGING, reservation)  # still the dialer's
    assert not b.release("a1", "L1", 6.5)  # the phone rings: too late to take back
    b.apply(d.CallConnected(7.0, "L1", "PJSIP/1001", "PJSIP/1001-1", "sales", 1.0), 7.0)
    assert (agent.status, agent.reservation) == (AgentState.ON_CALL_INBOUND, None)
    b.apply(d.AgentLeftCall(20.0, "L1", "PJSIP/1001"), 20.0)
    assert agent.status is AgentState.WRAP_UP
    assert b.reserve("a1", "routing", "L2", 21.0) is None  # wrapping up: not ready
    b.tick(30.0)
    assert b.reserve("a1", "routing", "L2", 31.0) is not None


def test_a_ring_no_answer_ends_the_reservation_with_a_pause() -> None:
    b = book()
    b.reserve("a1", "routing", "L1", 5.0)
    b.apply(ringing(6.0, "L1"), 6.0)
    b.apply(d.RingNoAnswer(21.0, "L1", "PJSIP/1001", "NOANSWER", 15.0), 21.0)
    agent = b.agents["a1"]
    assert (agent.status, agent.pause_reason, agent.reservation) == (AgentState.PAUSED, "no-answer", None)
    assert b.reserve("a1", "routing", "L2", 22.0) is None


def test_a_direct_call_ringing_a_ready_agent_makes_them_ringing_without_a_reservation() -> None:
    b = book()
    b.apply(ringing(5.0, "L-direct"), 5.0)
    agent = b.agents["a1"]
    assert (agent.status, agent.call, agent.reservation) == (AgentState.RINGING, "L-direct", None)
    assert b.reserve("a1", "routing", "L1", 6.0) is None


def test_another_call_ringing_a_reserved_agent_leaves_the_reservation_alone() -> None:
    b = book()
    reservation = b.reserve("a1", "routing", "L1", 5.0)
    b.apply(ringing(6.0, "L-other"), 6.0)
    agent = b.agents["a1"]
    assert (agent.status, agent.call, agent.reservation) == (AgentState.RESERVED, "L1", reservation)


def test_a_call_the_dialer_placed_puts_the_agent_on_call_outbound_and_back_after_hold() -> None:
    b = book()
    b.apply(d.CallArrived(4.0, "L1", "u", "PJSIP/trunk-1", d.Direction.OUTBOUND, "100", "", "200"), 4.0)
    b.reserve("a1", "dialer", "L1", 5.0)
    b.apply(d.CallConnected(7.0, "L1", "PJSIP/1001", "PJSIP/1001-1", "", 0.0), 7.0)
    agent = b.agents["a1"]
    assert agent.status is AgentState.ON_CALL_OUTBOUND
    b.apply(d.CallHeld(8.0, "L1", "PJSIP/1001-1"), 8.0)
    assert agent.status is AgentState.ON_HOLD
    b.apply(d.CallResumed(9.0, "L1", "PJSIP/1001-1", 1.0), 9.0)
    assert agent.status is AgentState.ON_CALL_OUTBOUND
    b.apply(d.CallEnded(30.0, "L1", 16, "agent", "answered"), 30.0)
    assert b.talking_state("L1") is AgentState.ON_CALL_INBOUND  # forgotten once the call is over


def test_a_call_whose_arrival_ctid_did_not_see_counts_as_inbound() -> None:
    b = book()
    b.apply(d.CallConnected(7.0, "L-direct", "PJSIP/1002", "PJSIP/1002-1", "", 0.0), 7.0)
    assert b.agents["a2"].status is AgentState.ON_CALL_INBOUND


def test_a_ring_stamped_a_hair_before_the_reservation_starts_when_it_does() -> None:
    b = book()
    b.take_changes()
    b.reserve("a1", "routing", "L1", 10.0)
    b.apply(ringing(9.9999999, "L1"), 9.9999999)  # the simulated phone's clock, not routing's
    assert b.agents["a1"].since == 10.0
    assert [(c.state, c.at) for c in b.take_changes()] == [("reserved", 10.0), ("ringing", 10.0)]
