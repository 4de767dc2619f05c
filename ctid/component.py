"""The seam between the daemon and its domains: each domain package gives the daemon one `Component`.

A component says what it needs and gives, and the daemon wires it: the bus subscribers it wants fed
(`subscriptions`), the HTTP routes the web layer mounts for it (`routes`), what it does when ctid starts and
stops, and after each AMI resync of a server. It is built by a factory from the `Context` (the shared
services: configuration, clock, bus, command executor, push hub, database, and the components built before
it), so adding a domain is one new package and one line in the daemon's list of factories. `Ticker` is the
one periodic loop components run (routing's pass, the wallboard's push).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from ctid.agents import AgentBook
from ctid.auth.policy import Policy, Role
from ctid.bus import Subscriber
from ctid.push import PushHub

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ctid.bus import EventBus
    from ctid.clock import Clock
    from ctid.config import CtidConfig
    from ctid.executor import CommandExecutor
    from ctid.state import CallStateModel

log = structlog.get_logger("ctid.component")

Handler = Callable[[Any], Awaitable[Any]]  # an aiohttp handler: request in, response out
C = TypeVar("C", bound="Component")


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP route a component serves, and who may call it (checked by the web layer, not the handler):
    users of at least `role`; when `own` names a path parameter, an agent only with their own agent id."""

    method: str  # GET, POST, ...
    path: str  # aiohttp's pattern, e.g. /api/agents/{agent_id}/state
    handler: Handler
    role: Role
    own: str = ""

    @property
    def policy(self) -> Policy:
        return Policy(self.role, self.own)


class Component:
    """A domain as the daemon sees it. Every hook has a do-nothing default; override what the domain needs."""

    name = "component"  # also the origin of the events it publishes on the bus

    def subscriptions(self) -> Sequence[Subscriber]:
        """Bus subscribers, fed every domain event in publish order, in the order components are listed."""
        return ()

    def routes(self) -> Sequence[Route]:
        return ()

    async def start(self) -> None:
        """ctid is starting: take up saved state, open listeners. Before the AMI connections open."""

    def started(self) -> None:
        """Everything is up and AMI is connecting: start periodic work."""

    async def stop(self) -> None:
        """ctid is stopping: stop periodic work and listeners (in the reverse order of the list)."""

    async def close(self) -> None:
        """Last: the AMI connections and the web server are closed; release what is left (databases)."""

    def reload(self, source: str) -> None:
        """Re-read the component's configuration files (SIGHUP); errors are logged, the old config kept."""

    def synced(self, server: str, models: Mapping[str, CallStateModel]) -> None:
        """`server` resynced (after each (re)connect); `models`: every server's call state, by name."""

    def refresh_metrics(self) -> None:
        """Bring gauges up to date: /metrics is being scraped."""


@dataclass
class Context:
    """What the daemon shares with the components it builds."""

    config: CtidConfig
    clock: Clock
    bus: EventBus
    executor: CommandExecutor
    engine: Engine  # the interaction log's: one pool per database
    servers: tuple[str, ...] = ()  # the Asterisk servers' names, from ctid.yaml
    hub: PushHub = field(default_factory=PushHub)  # where components publish to browsers
    agents: AgentBook = field(default_factory=lambda: AgentBook([]))  # the one agent book, shared
    schemas: list[Callable[[Engine], None]] = field(default_factory=list)  # run again on a new database
    components: list[Component] = field(default_factory=list)  # those built so far, in order
    # (dialled number, queue the dialplan asked for) -> the queue a caller waits in: set by the router
    queue_for: Callable[[str, str], str] | None = None
    # for the agent desktop, from routing.yaml as reloaded: set by the router
    pause_reasons: Callable[[], tuple[str, ...]] = lambda: ()
    crm_url_for: Callable[[str], str] = lambda queue: ""  # a queue's CRM URL template, '' when none
    handled_today: Callable[[str], int | None] = lambda device: None  # by agent device: set by the wallboard

    def add_schema(self, create: Callable[[Engine], None]) -> None:
        """Create a component's tables now, and again whenever the database is replaced under ctid."""
        create(self.engine)
        self.schemas.append(create)

    def find(self, kind: type[C]) -> C | None:
        """The component of this type built before the asking one, if any."""
        return next((c for c in self.components if isinstance(c, kind)), None)


Factory = Callable[[Context], Component | None]  # None: the component is off in this configuration


class Ticker:
    """Runs `tick` every `interval_s` seconds on the running loop until stopped; a failing tick is logged
    and the next one runs as usual. `interval_s` may change between ticks (virtual-time tests shorten it)."""

    def __init__(self, name: str, interval_s: float, tick: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.tick = tick
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ticker-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                result = self.tick()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("tick_failed", ticker=self.name)
