"""The ctid daemon: AMI connections, the call-state model per server, the FastAGI server and HTTP."""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import structlog

from ctid.agents.component import agents_component
from ctid.ami.client import AmiConnection, ResyncSnapshot
from ctid.ami.events import AmiEvent
from ctid.auth.component import auth_component
from ctid.bus import EventBus
from ctid.clock import Clock, SystemClock
from ctid.component import Component, Context, Factory, Ticker
from ctid.config import AsteriskServer, CtidConfig
from ctid.customers.component import customers_component
from ctid.errors import AmiError
from ctid.executor import CommandExecutor
from ctid.metrics import CALLS_ACTIVE, DOMAIN_EVENTS
from ctid.state import CallStateModel
from ctid.state.domain import CallArrived, CallEnded, DomainEvent, MonitoringStopped
from ivr.component import ivr_component
from reports.component import ReportsComponent, wallboard_component
from reports.log import InteractionLog
from routing.component import routing_component
from screenpop.component import screenpop_component

log = structlog.get_logger("ctid.daemon")


def tune_gc() -> None:
    """Fewer, later garbage collections: the AMI stream allocates many short-lived objects and no cycles."""
    gc.collect()
    gc.freeze()  # what start-up built lives for the whole run
    gc.set_threshold(100_000, 50, 50)


@dataclass(slots=True)
class ServerState:
    """One Asterisk server: its connection, its model, and the periods ctid could not see it.

    A gap's start and end are both on the server's clock (event timestamps, the resync's Ping), the
    start being the last thing ctid saw from the server: the last event, or the resync before it.
    """

    name: str
    model: CallStateModel
    connection: AmiConnection
    gaps: list[dict[str, float | None]] = field(default_factory=list)
    stale_channel_s: float = 4 * 3600.0  # silent channels older than this are checked against Asterisk
    last_seen: float | None = None


C = TypeVar("C", bound=Component)


class Ctid:
    """The daemon: the Asterisk servers (AMI connection, call-state model, data gaps) and the components,
    assembled from `FACTORIES`; the web layer serves what the components give it."""

    def __init__(self, config: CtidConfig, clock: Clock | None = None, raw_log: Path | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.bus = EventBus(count=lambda kind: DOMAIN_EVENTS.labels(kind).inc())
        ensure_sqlite_directory(config.database)
        Path(config.spool).parent.mkdir(parents=True, exist_ok=True)
        self.interaction_log = InteractionLog(config.database, Path(config.spool))
        self.servers: dict[str, ServerState] = {}
        # the one sender of AMI actions for the components
        self.executor = CommandExecutor(lambda name: self.servers[name].connection)
        context = Context(
            config,
            self.clock,
            self.bus,
            self.executor,
            self.interaction_log.engine,  # one pool per database: the log's
            servers=tuple(s.name for s in config.asterisk),
        )
        self.interaction_log.on_new_database.extend(context.schemas)  # a SQLite file replaced under ctid
        self.context = context
        self.components = assemble(context, self.factories())
        for component in self.components:
            for subscriber in component.subscriptions():
                self.bus.subscribe(subscriber)
        self.web_runner: Any = None
        self.web_port: int | None = None
        self._raw_log: IO[bytes] | None = raw_log.open("ab") if raw_log else None
        self._stopped = asyncio.Event()
        self._stopping = False
        for server in config.asterisk:
            self.servers[server.name] = self._make_server(server)
        # silent channels checked against Asterisk now and then, per server
        self._reapers = [
            Ticker(
                f"reap-{name}",
                max(1.0, min(state.stale_channel_s / 4, 300.0)),
                functools.partial(self.reap_stale_channels, name),
            )
            for name, state in self.servers.items()
        ]
        self.bus.subscribe(self._log_domain_event)

    def factories(self) -> list[Factory]:
        """The components, in the order they are built, started and fed each event (stopped in reverse)."""
        return [
            lambda context: ReportsComponent(context, self.interaction_log),  # every event logged first
            auth_component,
            agents_component,
            customers_component,
            routing_component,
            wallboard_component,
            ivr_component,
            screenpop_component,
        ]

    def find(self, kind: type[C]) -> C | None:
        """The component of this type, if it is on in this configuration."""
        return next((c for c in self.components if isinstance(c, kind)), None)

    def component(self, kind: type[C]) -> C:
        """The component of this type; LookupError if it is off (for tools and tests that drive one)."""
        found = self.find(kind)
        if found is None:
            raise LookupError(f"{kind.__name__} is off in this configuration")
        return found

    def _make_server(self, server: AsteriskServer) -> ServerState:
        # a caller with no usable CTID_QUEUE waits in its dialled number's queue (routing.yaml, as reloaded)
        model = CallStateModel(queue_resolver=self.context.queue_for)
        state: ServerState

        def on_event(event: AmiEvent) -> None:
            now = event.ts if event.ts is not None else self.clock.now()
            state.last_seen = now
            self.executor.on_ami_event(server.name, event)
            self.bus.publish(server.name, model.apply(event, now))

        def on_resync(snapshot: ResyncSnapshot) -> None:
            now = snapshot.server_time or self.clock.now()
            gone_at: float | None = None
            if state.gaps and state.gaps[-1]["end"] is None:
                gone_at = state.gaps[-1]["start"]
                assert gone_at is not None
                end = max(now, gone_at)  # one clock, but never a gap that ends before it starts
                state.gaps[-1]["end"] = end
                self.interaction_log.record_gap(server.name, gone_at, end)
            events = model.resync(snapshot.channels, snapshot.statuses, snapshot.devices, now, gone_at)
            state.last_seen = now
            self.bus.publish(server.name, events)
            models = {name: each.model for name, each in self.servers.items()}
            for component in self.components:
                component.synced(server.name, models)

        def on_disconnect() -> None:
            self.executor.forget_server(server.name)
            if self._stopping:
                return  # a shutdown is not a gap in what ctid saw
            start = state.last_seen if state.last_seen is not None else self.clock.now()
            state.gaps.append({"start": start, "end": None})
            self.interaction_log.record_gap(server.name, start)

        raw_log = self._raw_log
        raw_sink: Callable[[bytes], None] | None = None
        if raw_log is not None:

            def raw_sink(data: bytes) -> None:
                raw_log.write(data)

        connection = AmiConnection(
            name=server.name,
            host=server.host,
            port=server.port,
            username=server.username,
            secret=server.secret.get_secret_value(),
            ssl=server.tls,
            action_timeout=server.action_timeout_s,
            reconnect_min=server.reconnect_min_s,
            reconnect_max=server.reconnect_max_s,
            ping_interval=server.ping_interval_s,
            on_event=on_event,
            on_resync=on_resync,
            on_disconnect=on_disconnect,
            raw_sink=raw_sink,
        )
        state = ServerState(server.name, model, connection, stale_channel_s=server.stale_channel_s)
        return state

    def _log_domain_event(self, server: str, event: DomainEvent) -> None:
        if isinstance(event, CallArrived | CallEnded):
            log.info(event.kind, server=server, linkedid=event.linkedid, **_loggable(event))

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        from ctid.web import start_web

        for component in self.components:  # the log first: what the others take up is read from it
            await component.start()
        await self._resume_servers()
        web = self.config.web
        self.web_runner, self.web_port = await start_web(self, web.host, web.port, web.tls)
        for state in self.servers.values():
            state.connection.start()
        for component in self.components:
            component.started()
        for reaper in self._reapers:
            reaper.start()
        names = [c.name for c in self.components]
        log.info("ctid_started", web_port=self.web_port, components=names, servers=list(self.servers))

    async def _resume_servers(self) -> None:
        """Take each server up where the log left it: the calls it holds open go to the model (the first
        resync adopts them as the same calls, or ends them as lost), and the time since the last event
        logged from the server, while ctid was not running, is a data gap the first resync closes."""
        from sqlalchemy.exc import SQLAlchemyError

        from reports.log import ResumePoint, resume_point

        def load() -> dict[str, ResumePoint]:
            with self.interaction_log.engine.connect() as connection:
                return {name: resume_point(connection, name) for name in self.servers}

        try:
            points = await asyncio.to_thread(load)
        except SQLAlchemyError as exc:  # the database is away: resyncs adopt calls as new, as before
            log.warning("servers_resume_failed", error=type(exc).__name__)
            return
        for name, point in points.items():
            state = self.servers[name]
            state.model.expect(point.open_calls)
            state.last_seen = point.last_seen
            start = point.open_gap if point.open_gap is not None else point.last_seen
            if start is None:
                continue  # a new database: nothing was missed
            if point.open_gap is None:
                self.interaction_log.record_gap(name, start)
            state.gaps.append({"start": start, "end": None})
            log.info("server_resumed", server=name, open_calls=len(point.open_calls), gap_start=start)

    async def _note_stop(self) -> None:
        """From now on ctid sees nothing: the log notes when, per server, on Asterisk's clock (a Ping's
        Timestamp), so the next start's data gap runs from here to its first resync, one clock. A crash
        notes nothing: that gap starts at the last event logged instead."""
        for name, state in self.servers.items():
            if not state.connection.synced.is_set():
                continue  # out of sight already: its gap is open
            try:
                reply = await state.connection.action("Ping", timeout=1.0)
                at = float(reply.get("Timestamp") or "nan")
            except (AmiError, ValueError):
                continue
            if math.isfinite(at):
                self.interaction_log.record(name, MonitoringStopped(max(at, state.last_seen or at), ""))

    async def stop(self) -> None:
        self._stopping = True
        for reaper in self._reapers:
            await reaper.stop()
        await self._note_stop()
        for component in reversed(self.components):
            await component.stop()
        for state in self.servers.values():
            await state.connection.close()
        if self.web_runner is not None:
            await self.web_runner.cleanup()
        for component in reversed(self.components):  # the log last: the others may still write to it
            await component.close()
        if self._raw_log is not None:
            self._raw_log.close()
        self._stopped.set()
        log.info("ctid_stopped")

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload, "sighup")
        await self.start()
        tune_gc()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def reap_stale_channels(self, name: str) -> int:
        """Channels silent for stale_channel_s that Asterisk no longer lists hung up unseen: their calls end
        (as lost). Returns how many went; a check that cannot be made now is made at the next round."""
        state = self.servers[name]
        if not state.connection.synced.is_set():
            return 0  # the resync on reconnect does this job
        now = self.clock.now()
        if not state.model.idle_channels(now, state.stale_channel_s):
            return 0
        try:
            listed = await state.connection.listed_channels()
        except AmiError as exc:
            log.warning("stale_channel_check_failed", server=name, error=str(exc) or type(exc).__name__)
            return 0
        before = set(state.model.channels)
        events = state.model.reap(listed, now, state.stale_channel_s)
        gone = sorted(before - set(state.model.channels))
        if gone:
            log.warning("stale_channels_reaped", server=name, uniqueids=gone, idle_s=state.stale_channel_s)
        self.bus.publish(name, events)
        return len(gone)

    def reload(self, source: str) -> None:
        """SIGHUP: every component re-reads its configuration files."""
        for component in self.components:
            component.reload(source)

    async def wait_synced(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(s.connection.synced.wait() for s in self.servers.values())), timeout
        )

    # ---- views ------------------------------------------------------------------------------------

    def calls(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        out = []
        counts: dict[str, int] = {}
        for name, state in self.servers.items():
            for call in state.model.active_calls():
                counts[call.state.value] = counts.get(call.state.value, 0) + 1
                out.append({"server": name, **call.to_dict(now)})
        for state_name in ("dialing", "ivr", "waiting", "ringing", "connected", "held", "after"):
            CALLS_ACTIVE.labels(state_name).set(counts.get(state_name, 0))
        return out

    def call(self, linkedid: str) -> dict[str, Any] | None:
        """One call, live or recently ended, with its timeline."""
        now = self.clock.now()
        for name, state in self.servers.items():
            found = state.model.calls.get(linkedid) or next(
                (c for c in state.model.ended if c.linkedid == linkedid), None
            )
            if found is not None:
                return {"server": name, **found.to_dict(now), "timeline": found.timeline}
        return None

    def history(self) -> list[dict[str, Any]]:
        """Recently ended calls, oldest first, with their timelines."""
        return [
            {"server": name, **call.to_dict(), "timeline": call.timeline}
            for name, state in self.servers.items()
            for call in state.model.ended
        ]

    def agents(self) -> list[dict[str, Any]]:
        """The agent book's agents, with what their phones did; then the other phones seen."""
        phones: dict[str, dict[str, Any]] = {}
        for name, state in self.servers.items():
            for agent in state.model.agents.values():
                phones[agent.device] = {"server": name, "id": "", **agent.to_dict()}
        out = []
        for configured in self.context.agents.listing(self.clock.now()):
            phone = phones.pop(configured["device"], {})
            out.append(
                {
                    **configured,
                    "server": phone.get("server", ""),
                    "device_state": phone.get("device_state", ""),
                    "handled": phone.get("handled", 0),
                    "ring_no_answer": phone.get("ring_no_answer", 0),
                }
            )
        return out + list(phones.values())

    def health(self) -> dict[str, Any]:
        servers = {
            name: {
                "connected": s.connection.logged_in,
                "synced": s.connection.synced.is_set(),
                "live": s.connection.live,  # Asterisk sent bytes and answered Ping lately
                "gaps": len(s.gaps),
            }
            for name, s in self.servers.items()
        }
        return {"ok": all(v["synced"] and v["live"] for v in servers.values()), "servers": servers}


def assemble(context: Context, factories: list[Factory]) -> list[Component]:
    """Build the components in order, each seeing those built before it; a factory may say off (None)."""
    for factory in factories:
        component = factory(context)
        if component is not None:
            context.components.append(component)
    return list(context.components)


def ensure_sqlite_directory(url: str) -> None:
    """A SQLite file's directory (var/ in the sample config) exists before anything opens it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _loggable(event: DomainEvent) -> dict[str, Any]:
    data = event.to_dict()
    for key in ("kind", "linkedid", "at"):
        data.pop(key, None)
    return data
