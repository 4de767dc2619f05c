"""ctid.bus: events in publish order even when a subscriber publishes during delivery; failures isolated."""

from __future__ import annotations

from ctid.bus import ROUTING, EventBus
from ctid.state import domain as d


def connected(linkedid: str) -> d.CallConnected:
    return d.CallConnected(
        1.0, linkedid, agent="alice", agent_channel="PJSIP/1001-01", queue="sales", wait_s=3.0
    )


def agent_state(agent: str) -> d.AgentStateChanged:
    return d.AgentStateChanged(
        1.0, "", agent=agent, device="PJSIP/1001", state="on_call", reason="", previous=""
    )


def test_an_event_published_during_delivery_reaches_every_subscriber_after_its_cause() -> None:
    bus = EventBus()
    seen: dict[str, list[tuple[str, str]]] = {"first": [], "routing": [], "wallboard": []}

    def first(origin: str, event: d.DomainEvent) -> None:
        seen["first"].append((origin, event.kind))

    def routing(origin: str, event: d.DomainEvent) -> None:
        seen["routing"].append((origin, event.kind))
        if isinstance(event, d.CallConnected):  # the effect, published while the cause is delivered
            bus.publish(ROUTING, [agent_state("alice")])  # queued: the cause reaches the wallboard first

    def wallboard(origin: str, event: d.DomainEvent) -> None:
        seen["wallboard"].append((origin, event.kind))

    for subscriber in (first, routing, wallboard):
        bus.subscribe(subscriber)
    bus.publish("pbx1", [connected("L1"), connected("L2")])
    expected = [
        ("pbx1", "CallConnected"),
        ("pbx1", "CallConnected"),
        (ROUTING, "AgentStateChanged"),
        (ROUTING, "AgentStateChanged"),
    ]
    assert seen == {"first": expected, "routing": expected, "wallboard": expected}


def test_a_subscriber_that_raises_does_not_stop_the_others_or_later_events() -> None:
    bus = EventBus()
    got: list[str] = []

    def broken(origin: str, event: d.DomainEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda origin, event: got.append(event.linkedid))
    bus.publish("pbx1", [connected("L1"), connected("L2")])
    bus.publish("pbx1", [connected("L3")])  # the bus is not left "delivering" by the failure
    assert got == ["L1", "L2", "L3"]
    unsubscribe()
    bus.publish("pbx1", [connected("L4")])
    assert got == ["L1", "L2", "L3"]


def test_count_is_told_each_delivered_event_kind_before_its_subscribers() -> None:
    order: list[str] = []
    bus = EventBus(count=lambda kind: order.append(f"count {kind}"))
    bus.subscribe(lambda origin, event: order.append(f"deliver {event.kind}"))
    bus.publish("pbx1", [connected("L1"), agent_state("alice")])
    assert order == [
        "count CallConnected",
        "deliver CallConnected",
        "count AgentStateChanged",
        "deliver AgentStateChanged",
    ]
