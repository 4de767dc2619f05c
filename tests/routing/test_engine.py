"""The routing decision on hand-made snapshots: strategies, priorities that age, overflow, exclusions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.agents import AgentState, AgentView
from ctid.commands import OfferCall
from routing import (
    QueuePolicy,
    RoutingSnapshot,
    Strategy,
    WaitingCall,
    decide,
    effective_priority,
)
from routing.engine import agent_key, qualifies, queue_order

NOW = 10_000.0
SALES = QueuePolicy("sales", skills=(("sales", 3),), ring_timeout_s=12.0)


def agent(
    agent_id: str, *, since: float = 0.0, status: AgentState = AgentState.READY, **kw: object
) -> AgentView:
    options: dict[str, object] = {"skills": (("sales", 5),), "queues": ("sales",)}
    options.update(kw)
    return AgentView(agent_id, f"PJSIP/{agent_id}", status, since, **options)  # type: ignore[arg-type]


def call(linkedid: str, *, arrived: float = NOW - 10, queue: str = "sales", **kw: object) -> WaitingCall:
    return WaitingCall(linkedid, f"PJSIP/trunk-{linkedid}", queue, arrived, **kw)  # type: ignore[arg-type]


def snapshot(
    agents: list[AgentView],
    waiting: list[WaitingCall],
    queue: QueuePolicy = SALES,
    ageing: float = 1.0,
    head_start_after_s: float = 0.0,
) -> RoutingSnapshot:
    return RoutingSnapshot(
        {queue.name: queue},
        tuple(agents),
        tuple(waiting),
        ageing_per_s=ageing,
        head_start_after_s=head_start_after_s,
    )


def routed(snap: RoutingSnapshot) -> list[tuple[str, str]]:
    return [(o.linkedid, o.agent_id) for o in decide(snap, NOW)]


def test_longest_idle_agent_gets_the_call_and_the_offer_carries_the_dial_data() -> None:
    snap = snapshot(
        [agent("1001", since=500), agent("1002", since=100), agent("1003", since=300)], [call("c1")]
    )
    (offer,) = decide(snap, NOW)
    assert (offer.agent_id, offer.device, offer.channel) == ("1002", "PJSIP/1002", "PJSIP/trunk-c1")
    assert (offer.ring_timeout_s, offer.queue) == (12.0, "sales")


def test_only_ready_and_qualified_agents_are_offered() -> None:
    agents = [
        agent("1001", since=0, status=AgentState.PAUSED),
        agent("1002", since=1, status=AgentState.WRAP_UP),
        agent("1003", since=2, skills=(("sales", 2),)),  # below the queue's minimum level 3
        agent("1004", since=3, queues=("support",)),
        agent("1005", since=4),
    ]
    assert routed(snapshot(agents, [call("c1")])) == [("c1", "1005")]


def test_least_occupied_routes_by_load() -> None:
    queue = QueuePolicy("sales", strategy=Strategy.LEAST_OCCUPIED)
    agents = [
        agent("1001", occupancy=0.9, since=0),
        agent("1002", occupancy=0.4),
        agent("1003", occupancy=0.7),
    ]
    assert routed(snapshot(agents, [call("c1"), call("c2", arrived=NOW - 5)], queue)) == [
        ("c1", "1002"),
        ("c2", "1003"),
    ]


def test_skill_first_prefers_the_most_skilled() -> None:
    queue = QueuePolicy("sales", skills=(("sales", 3), ("chinese", 1)), strategy=Strategy.SKILL_FIRST)
    agents = [
        agent("1001", skills=(("sales", 5), ("chinese", 2)), since=0),
        agent("1002", skills=(("sales", 9), ("chinese", 6)), since=50),
        agent("1003", skills=(("sales", 9),), since=10),  # no chinese: not qualified
    ]
    assert routed(snapshot(agents, [call("c1")], queue)) == [("c1", "1002")]


def test_best_for_tier_gives_tier_a_the_best_agent_and_others_the_least_loaded() -> None:
    queue = QueuePolicy("sales", strategy=Strategy.BEST_FOR_TIER)
    agents = [agent("1001", quality=0.95, occupancy=0.9), agent("1002", quality=0.6, occupancy=0.2)]
    assert routed(snapshot(agents, [call("a", tier="A", base_priority=100)], queue)) == [("a", "1001")]
    assert routed(snapshot(agents, [call("c", tier="C", base_priority=10)], queue)) == [("c", "1002")]


def test_round_robin_offers_the_agent_offered_longest_ago() -> None:
    queue = QueuePolicy("sales", strategy=Strategy.ROUND_ROBIN)
    agents = [
        agent("1001", last_offered_seq=7),
        agent("1002", last_offered_seq=3),
        agent("1003", last_offered_seq=5),
    ]
    assert routed(snapshot(agents, [call("c1")], queue)) == [("c1", "1002")]


def test_fewest_calls_offers_the_agent_who_answered_fewest_then_the_longest_idle() -> None:
    queue = QueuePolicy("sales", strategy=Strategy.FEWEST_CALLS)
    agents = [
        agent("1001", calls_handled=7, since=0),
        agent("1002", calls_handled=2, since=300),
        agent("1003", calls_handled=2, since=100),
    ]
    assert routed(snapshot(agents, [call("c1"), call("c2", arrived=NOW - 5)], queue)) == [
        ("c1", "1003"),
        ("c2", "1002"),
    ]


def test_ties_are_broken_by_agent_id() -> None:
    agents = [agent("1003", since=5), agent("1001", since=5), agent("1002", since=5)]
    assert routed(snapshot(agents, [call("c1")])) == [("c1", "1001")]


def test_a_tier_a_caller_who_arrives_later_is_served_first() -> None:
    waiting = [
        call("c-tier", arrived=NOW - 30, tier="C", base_priority=10),
        call("a-tier", arrived=NOW - 2, tier="A", base_priority=100),
    ]
    assert routed(snapshot([agent("1001")], waiting)) == [("a-tier", "1001")]


def test_ageing_lets_a_long_waiting_c_caller_overtake_a_fresh_a_caller() -> None:
    # base A 100, C 10, 1 point a second: after 90 s of waiting C equals A's fresh priority
    fresh_a = call("a", arrived=NOW - 1, tier="A", base_priority=100)
    c_89 = call("c", arrived=NOW - 89, tier="C", base_priority=10)
    c_95 = call("c", arrived=NOW - 95, tier="C", base_priority=10)
    assert routed(snapshot([agent("1001")], [fresh_a, c_89])) == [("a", "1001")]
    assert routed(snapshot([agent("1001")], [fresh_a, c_95])) == [("c", "1001")]
    assert effective_priority(c_95, NOW, 1.0) > effective_priority(fresh_a, NOW, 1.0)


def test_a_head_start_counts_only_once_the_caller_has_waited_the_delay() -> None:
    # base A 100, C 10; the head start counts after 5 s of waiting
    c_30 = call("c", arrived=NOW - 30, tier="C", base_priority=10)
    c_4 = call("c", arrived=NOW - 4, tier="C", base_priority=10)
    a_2 = call("a", arrived=NOW - 2, tier="A", base_priority=100)
    a_5 = call("a", arrived=NOW - 5, tier="A", base_priority=100)
    one = [agent("1001")]
    # just arrived, A does not pass a caller who has waited past the delay, nor one who came first
    assert routed(snapshot(one, [a_2, c_30], head_start_after_s=5.0)) == [("c", "1001")]
    assert routed(snapshot(one, [a_2, c_4], head_start_after_s=5.0)) == [("c", "1001")]
    # from 5 s on, A's head start counts again
    assert routed(snapshot(one, [a_5, c_30], head_start_after_s=5.0)) == [("a", "1001")]
    assert effective_priority(a_2, NOW, 1.0, 5.0) == 2.0
    assert effective_priority(a_5, NOW, 1.0, 5.0) == 105.0
    # without the delay a fresh A is first at once
    assert routed(snapshot(one, [a_2, c_30])) == [("a", "1001")]


def test_an_agent_who_let_the_call_ring_out_is_not_offered_it_again() -> None:
    agents = [agent("1001", since=0), agent("1002", since=100)]
    assert routed(snapshot(agents, [call("c1", excluded_agents=("1001",))])) == [("c1", "1002")]


def test_overflow_widens_skill_levels_then_adds_another_queue() -> None:
    queue = QueuePolicy(
        "sales",
        skills=(("sales", 6),),
        widen_after_s=30,
        widen_by=2,
        add_queue_after_s=60,
        add_queue="support",
    )
    junior = agent("1001", skills=(("sales", 4),))
    helper = agent("2001", queues=("support",), skills=(("sales", 9),))
    assert routed(snapshot([junior, helper], [call("c1", arrived=NOW - 10)], queue)) == []
    assert routed(snapshot([junior, helper], [call("c1", arrived=NOW - 40)], queue)) == [("c1", "1001")]
    assert routed(snapshot([helper], [call("c1", arrived=NOW - 70)], queue)) == [("c1", "2001")]


def test_calls_without_a_free_agent_wait_and_no_agent_is_booked_twice() -> None:
    waiting = [call(f"c{i}", arrived=NOW - 10 - i) for i in range(5)]
    offers = routed(snapshot([agent("1001"), agent("1002")], waiting))
    assert [c for c, _ in offers] == ["c4", "c3"]  # the two who waited longest
    assert sorted(a for _, a in offers) == ["1001", "1002"]


@st.composite
def snapshots(draw: st.DrawFn) -> RoutingSnapshot:
    n_agents = draw(st.integers(0, 12))
    agents = [
        AgentView(
            f"a{i}",
            f"PJSIP/a{i}",
            draw(st.sampled_from(list(AgentState))),
            draw(st.floats(0, NOW)),
            skills=(("sales", draw(st.integers(1, 10))),),
            queues=tuple(draw(st.sets(st.sampled_from(["sales", "support"]), min_size=1))),
            occupancy=draw(st.floats(0, 1)),
        )
        for i in range(n_agents)
    ]
    waiting = [
        WaitingCall(
            f"c{i}",
            f"ch{i}",
            draw(st.sampled_from(["sales", "support"])),
            draw(st.floats(0, NOW)),
            tier=draw(st.sampled_from("ABC")),
            base_priority=draw(st.sampled_from([10.0, 50.0, 100.0])),
            excluded_agents=tuple(draw(st.sets(st.sampled_from([a.agent_id for a in agents] or ["x"])))),
        )
        for i in range(draw(st.integers(0, 12)))
    ]
    strategy = draw(st.sampled_from(list(Strategy)))
    queues = {
        "sales": QueuePolicy("sales", skills=(("sales", draw(st.integers(1, 10))),), strategy=strategy),
        "support": QueuePolicy("support", strategy=strategy),
    }
    return RoutingSnapshot(queues, tuple(agents), tuple(waiting))


@settings(max_examples=300, deadline=None)
@given(snap=snapshots())
def test_invariants_no_double_booking_only_ready_qualified_agents_and_no_idle_match_left(
    snap: RoutingSnapshot,
) -> None:
    offers = decide(snap, NOW)
    agents = {a.agent_id: a for a in snap.agents}
    calls = {c.linkedid: c for c in snap.waiting}
    assert len({o.agent_id for o in offers}) == len(offers)  # no agent double-booked
    assert len({o.linkedid for o in offers}) == len(offers)  # no call offered twice
    for offer in offers:
        chosen, waiting = agents[offer.agent_id], calls[offer.linkedid]
        assert chosen.status is AgentState.READY and waiting.queue in chosen.queues
        assert offer.agent_id not in waiting.excluded_agents
        assert qualifies(chosen, snap.queues[waiting.queue], 0)
    # a call left waiting has no ready, qualified, unbooked agent
    booked = {o.agent_id for o in offers}
    for waiting in calls.values():
        if waiting.linkedid in {o.linkedid for o in offers}:
            continue
        assert not [
            a
            for a in snap.agents
            if a.status is AgentState.READY
            and waiting.queue in a.queues
            and a.agent_id not in booked
            and a.agent_id not in waiting.excluded_agents
            and qualifies(a, snap.queues[waiting.queue], 0)
        ]


def reference_decide(snap: RoutingSnapshot, now: float) -> list[OfferCall]:
    """decide() as first written: every waiting call in order, the best of a fresh scan of its pool."""
    taken: set[str] = set()
    offers = []
    for waiting in queue_order(snap, now):
        queue = snap.queues.get(waiting.queue)
        if queue is None:
            continue
        waited = now - waiting.arrived_at
        widen = queue.widen_by if queue.widen_after_s is not None and waited >= queue.widen_after_s else 0
        pools = [queue.name]
        if queue.add_queue and queue.add_queue_after_s is not None and waited >= queue.add_queue_after_s:
            pools.append(queue.add_queue)
        candidates = [
            a
            for pool in pools
            for a in snap.agents
            if a.status is AgentState.READY
            and pool in a.queues
            and a.agent_id not in taken
            and a.agent_id not in waiting.excluded_agents
            and qualifies(a, queue, widen)
        ]
        if candidates:
            best = min(candidates, key=agent_key(queue.strategy, queue, waiting.tier))
            taken.add(best.agent_id)
            priority = effective_priority(waiting, now, snap.ageing_per_s, snap.head_start_after_s)
            offers.append(
                OfferCall(
                    waiting.linkedid,
                    waiting.channel,
                    best.agent_id,
                    best.device,
                    queue.ring_timeout_s,
                    queue.name,
                    priority,
                )
            )
    return offers


@st.composite
def overflowing_snapshots(draw: st.DrawFn) -> RoutingSnapshot:
    """Three queues with every strategy, skill levels, widening and another queue's agents after a wait."""
    names = ["sales", "support", "vip"]
    agents = [
        AgentView(
            f"a{i}",
            f"PJSIP/a{i}",
            draw(st.sampled_from([AgentState.READY, AgentState.READY, AgentState.ON_CALL_INBOUND])),
            float(draw(st.integers(0, 5))),  # few distinct values: ties in every key
            skills=(("sales", draw(st.integers(1, 10))), ("support", draw(st.integers(1, 10)))),
            queues=tuple(draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))),
            occupancy=draw(st.sampled_from([0.0, 0.5, 0.9])),
            quality=draw(st.sampled_from([0.2, 0.8])),
            last_offered_seq=draw(st.integers(0, 3)),
            calls_handled=draw(st.integers(0, 3)),
        )
        for i in range(draw(st.integers(0, 15)))
    ]
    queues = {
        name: QueuePolicy(
            name,
            skills=((skill, draw(st.integers(1, 8))),),
            strategy=draw(st.sampled_from(list(Strategy))),
            widen_after_s=draw(st.sampled_from([None, 30.0])),
            widen_by=draw(st.integers(0, 4)),
            add_queue_after_s=draw(st.sampled_from([None, 60.0])),
            add_queue=draw(st.sampled_from([n for n in names if n != name])),
        )
        for name, skill in zip(names, ["sales", "support", "sales"], strict=True)
    }
    ids = [a.agent_id for a in agents] or ["x"]
    waiting = [
        WaitingCall(
            f"c{i}",
            f"ch{i}",
            draw(st.sampled_from([*names, "nowhere"])),
            NOW - draw(st.sampled_from([0.0, 3.0, 5.0, 10.0, 40.0, 40.0, 90.0])),
            tier=draw(st.sampled_from("ABC")),
            base_priority=draw(st.sampled_from([10.0, 50.0, 100.0])),
            excluded_agents=tuple(draw(st.sets(st.sampled_from(ids), max_size=2))),
        )
        for i in range(draw(st.integers(0, 15)))
    ]
    return RoutingSnapshot(
        queues,
        tuple(agents),
        tuple(waiting),
        ageing_per_s=draw(st.sampled_from([0.0, 1.0])),
        head_start_after_s=draw(st.sampled_from([0.0, 5.0])),
    )


@settings(max_examples=300, deadline=None)
@given(snap=overflowing_snapshots())
def test_decide_offers_exactly_what_a_fresh_scan_per_call_would(snap: RoutingSnapshot) -> None:
    assert decide(snap, NOW) == reference_decide(snap, NOW)
