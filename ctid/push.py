"""The push hub: messages for browsers by topic, and the WebSocket handler carrying one topic to a browser.

A component registers a topic (`PushHub.topic`) and publishes JSON text to it; every browser subscribed gets
it. A `SNAPSHOT` topic keeps only the latest undelivered message per subscriber (a slow wallboard skips stale
snapshots but always gets the newest); an `EVENTS` topic (a screen pop) queues every message, and a subscriber
that falls more than the topic's limit behind is closed with the reason, never silently dropped: its browser
reconnects and gets the topic's snapshot afresh. Topic names are exact (`wallboard`, `supervisor`) or a
registered prefix and an id (`agent:7` under `agent:`). The hub itself does no I/O: `serve` is the shell.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from ctid.errors import CtidError
from ctid.metrics import PUSH_CLOSED, PUSH_MESSAGES, PUSH_SUBSCRIBERS

WALLBOARD_TOPIC = "wallboard"  # the supervisors' wallboard: its latest snapshot
SUPERVISOR_TOPIC = "supervisor"  # events for every supervisor's desktop
AGENT_TOPIC = "agent:"  # the prefix of each agent's own topic, `agent:<id>`: that agent's screen pops
EVENTS_LIMIT = 100  # messages an events subscriber may fall behind before it is closed
SLOW_CONSUMER = "slow_consumer"
CLOSE_CODE = 4008  # the WebSocket close code when the hub closes a subscription: reconnect for a snapshot

Snapshot = Callable[[str], str | None]  # topic name -> what a new subscriber gets first, if anything


class Kind(enum.Enum):
    SNAPSHOT = "snapshot"  # each message replaces the last: a subscriber gets the newest
    EVENTS = "events"  # each message counts: a subscriber gets all, in order, or is closed


class UnknownTopic(CtidError):
    """A topic no component registered."""


class Closed(CtidError):
    """The hub closed a subscription: `reason` is the text the browser is given, `cause` its kind (bounded,
    a metric label)."""

    def __init__(self, cause: str, reason: str) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Topic:
    name: str  # exact, or a prefix ending in ":" for parameterised names
    kind: Kind
    snapshot: Snapshot | None
    limit: int


class Subscription:
    """One subscriber of one topic: messages wait here until the subscriber takes them. Leave with `close`
    (or use it as a context manager)."""

    def __init__(self, hub: PushHub, name: str, topic: Topic) -> None:
        self.name = name
        self.topic = topic
        self._hub = hub
        self._pending: deque[str] = deque()
        self._closed: Closed | None = None
        self._ready = asyncio.Event()
        self._left = False

    @property
    def backlog(self) -> int:
        """Messages waiting to be taken."""
        return len(self._pending)

    def next_nowait(self) -> str | None:
        """The next message, or None when none waits; raises `Closed` once the hub closed the subscription."""
        if self._closed is not None:
            raise self._closed
        return self._pending.popleft() if self._pending else None

    async def next(self) -> str:
        """The next message, waiting for one; raises `Closed` once the hub closed the subscription."""
        while (message := self.next_nowait()) is None:
            self._ready.clear()
            await self._ready.wait()
        return message

    def close(self) -> None:
        """The subscriber leaves: the hub forgets it. Safe to call again, or after the hub closed it."""
        if not self._left:
            self._left = True
            self._hub._forget(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _offer(self, message: str) -> bool:
        """Take a published message; False when an events subscriber is already `limit` messages behind."""
        if self.topic.kind is Kind.SNAPSHOT:
            self._pending.clear()  # coalesced: the newest snapshot makes the older ones stale
        elif len(self._pending) >= self.topic.limit:
            return False
        self._pending.append(message)
        self._ready.set()
        return True

    def _shut(self, closed: Closed) -> None:
        self._closed = closed
        self._pending.clear()  # a reconnecting browser gets a fresh snapshot instead
        self._ready.set()


class PushHub:
    """Topics registered by the components, and who subscribes to each."""

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}
        self._subscribers: dict[str, list[Subscription]] = {}  # by full topic name, in subscription order

    def topic(
        self, name: str, kind: Kind, snapshot: Snapshot | None = None, limit: int = EVENTS_LIMIT
    ) -> None:
        """Register a topic: `name` exact, or a prefix ending in ":" for `name<id>` topics. `snapshot` gives a
        new subscriber its first message (called with the full name); `limit` bounds an events backlog."""
        if name in self._topics:
            raise ValueError(f"push topic {name!r} is registered already")
        if limit < 1:
            raise ValueError("a push topic's limit is at least 1")
        self._topics[name] = Topic(name, kind, snapshot, limit)

    def subscribe(self, name: str) -> Subscription:
        """A new subscriber of `name`: the topic's snapshot first (if it has one), then what is published."""
        topic = self._resolve(name)
        subscription = Subscription(self, name, topic)
        first = topic.snapshot(name) if topic.snapshot is not None else None
        if first is not None:
            subscription._offer(first)
        self._subscribers.setdefault(name, []).append(subscription)
        PUSH_SUBSCRIBERS.labels(topic.name).inc()
        return subscription

    def publish(self, name: str, message: str) -> None:
        """`message` to every subscriber of `name`; an events subscriber too far behind is closed instead."""
        topic = self._resolve(name)
        PUSH_MESSAGES.labels(topic.name).inc()
        for subscription in list(self._subscribers.get(name, ())):
            if not subscription._offer(message):
                reason = f"slow-consumer: more than {topic.limit} messages behind"
                subscription._shut(Closed(SLOW_CONSUMER, reason))
                PUSH_CLOSED.labels(topic.name, SLOW_CONSUMER).inc()
                subscription.close()

    def subscribers(self, name: str) -> int:
        """How many subscribe to `name` now."""
        return len(self._subscribers.get(name, ()))

    def _resolve(self, name: str) -> Topic:
        exact = self._topics.get(name)
        if exact is not None and not name.endswith(":"):
            return exact
        prefix, colon, rest = name.partition(":")
        parameterised = self._topics.get(prefix + colon)
        if parameterised is None or not colon or not rest:
            raise UnknownTopic(f"no push topic {name!r}")
        return parameterised

    def _forget(self, subscription: Subscription) -> None:
        subscribers = self._subscribers[subscription.name]
        subscribers.remove(subscription)
        if not subscribers:
            del self._subscribers[subscription.name]
        PUSH_SUBSCRIBERS.labels(subscription.topic.name).dec()


async def serve(
    request: web.Request, hub: PushHub, name: str | Sequence[str], heartbeat_s: float = 20
) -> web.WebSocketResponse:
    """One browser on topic `name` (or on several, e.g. an agent's state and pops, interleaved): each one's
    snapshot, then each message as published, until the browser leaves. When the hub closes a subscription,
    the socket is closed with `CLOSE_CODE` and the reason."""
    ws = web.WebSocketResponse(heartbeat=heartbeat_s)
    with ExitStack() as stack:
        subscriptions = [
            stack.enter_context(hub.subscribe(n)) for n in ([name] if isinstance(name, str) else name)
        ]
        await ws.prepare(request)
        leaving = asyncio.ensure_future(_read_until_closed(ws))
        taking = {asyncio.ensure_future(s.next()): s for s in subscriptions}
        try:
            while True:
                await asyncio.wait({*taking, leaving}, return_when=asyncio.FIRST_COMPLETED)
                done = [future for future in taking if future.done()]
                if not done:
                    break
                for future in done:
                    subscription = taking.pop(future)
                    try:
                        message = future.result()
                    except Closed as closed:
                        leaving.cancel()
                        await asyncio.gather(leaving, return_exceptions=True)
                        await ws.close(code=CLOSE_CODE, message=closed.reason.encode())
                        return ws
                    try:
                        await ws.send_str(message)
                    except ConnectionResetError:  # the browser left as the message went out
                        return ws
                    taking[asyncio.ensure_future(subscription.next())] = subscription
        finally:
            leaving.cancel()
            for future in taking:
                future.cancel()
    return ws


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """Browsers send nothing on a push socket; reading answers the heartbeat's pings and sees the close."""
    async for _ in ws:
        pass
