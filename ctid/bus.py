"""ctid.bus: delivers domain events to the components in-process, in order, isolating their failures.

Events published while the bus is delivering (routing's AgentStateChanged in answer to a CallConnected)
queue behind the event being delivered, so every subscriber sees each cause before its effects, and all
events in publish order. Each batch names its origin: the Asterisk server it came from, or the component
that published it (`ROUTING`). Pure: no I/O, no metrics of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import structlog

from ctid.state.domain import DomainEvent

log = structlog.get_logger("ctid.bus")

Subscriber = Callable[[str, DomainEvent], None]  # (origin: a server name or a component's, event)

AGENTS = "agents"  # the origin of agents' state changes (ctid.agents' component publishes the book's)
ROUTING = "routing"
WALLBOARD = "wallboard"  # and the wallboard's (a supervisor's worklist marks)
AUTH = "auth"  # and the auth component's (logins, failed logins, admin actions)
CUSTOMERS = "customers"  # and the customer book's (notes, quotes, cases, lifecycle, dispositions)
COMPONENT_ORIGINS = frozenset({AGENTS, ROUTING, WALLBOARD, AUTH, CUSTOMERS})  # not Asterisk servers


def from_server(origin: str) -> bool:
    """Whether events of this origin come from an Asterisk server (and so say where a call is)."""
    return bool(origin) and origin not in COMPONENT_ORIGINS


class EventBus:
    """`count`, if given, is told each delivered event's kind (the daemon counts them for Prometheus)."""

    def __init__(self, count: Callable[[str], None] | None = None) -> None:
        self._count = count
        self._subscribers: list[Subscriber] = []
        self._queue: deque[tuple[str, DomainEvent]] = deque()
        self._delivering = False

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, origin: str, events: Iterable[DomainEvent]) -> None:
        """Deliver `events` to every subscriber; from inside a delivery, after what is already queued."""
        self._queue.extend((origin, event) for event in events)
        if self._delivering:
            return  # the outermost publish delivers them, in order
        self._delivering = True
        try:
            while self._queue:
                self._deliver(*self._queue.popleft())
        finally:
            self._delivering = False

    def _deliver(self, origin: str, event: DomainEvent) -> None:
        if self._count is not None:
            self._count(event.kind)
        for subscriber in list(self._subscribers):
            try:
                subscriber(origin, event)
            except Exception:  # a failing consumer never stops the others or the AMI reader
                log.exception(
                    "bus_subscriber_failed", kind=event.kind, linkedid=event.linkedid, origin=origin
                )
