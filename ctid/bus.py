"""ctid.bus: delivers domain events to the components in-process, in order, isolating their failures."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ctid.metrics import DOMAIN_EVENTS
from ctid.state.domain import DomainEvent

log = structlog.get_logger("ctid.bus")

Subscriber = Callable[[str, DomainEvent], None]  # (server name, event)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._counters: dict[str, object] = {}

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, server: str, events: list[DomainEvent]) -> None:
        for event in events:
            DOMAIN_EVENTS.labels(event.kind).inc()
            for subscriber in list(self._subscribers):
                try:
                    subscriber(server, event)
                except Exception:  # a failing consumer never stops the others or the AMI reader
                    log.exception("bus_subscriber_failed", kind=event.kind, linkedid=event.linkedid)
