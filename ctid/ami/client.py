"""The connection to one Asterisk server: a thin asyncio shell over the sans-I/O `AmiSession`.

The session decides (ActionID correlation, list collection, resync buffering, liveness, the backoff schedule);
this shell only connects, feeds it the bytes and the time, writes what it asks for, keeps the futures of the
actions its callers await, and schedules timers at the deadlines the session gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import structlog

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.ami.parser import MAX_MESSAGE_BYTES, AmiParser
from ctid.ami.session import (
    CONTROL_OUTPUTS,
    COUNTED_EVENTS,
    OTHER_EVENTS,
    PONG_GRACE,
    RESYNC_VARIABLES,
    ActionCompleted,
    ActionFailed,
    AmiSession,
    LoggedIn,
    Malformed,
    Notice,
    ResyncFailed,
    ResyncReady,
    ResyncSnapshot,
    SendData,
    SessionOutput,
)
from ctid.errors import AmiActionError, AmiError, AmiNotConnected, AmiTimeout
from ctid.metrics import AMI_ACTION_SECONDS, AMI_CONNECTED, AMI_EVENTS, AMI_MALFORMED, AMI_RECONNECTS

__all__ = [
    "COUNTED_EVENTS",
    "OTHER_EVENTS",
    "PONG_GRACE",
    "RESYNC_VARIABLES",
    "AmiConnection",
    "CtidAmiProtocol",
    "ResyncSnapshot",
]

log = structlog.get_logger("ctid.ami")


class CtidAmiProtocol(asyncio.Protocol):
    """The transport's side of one TCP session: bytes to the session, its outputs to the connection."""

    def __init__(self, connection: AmiConnection) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.closed = False

    @property
    def parser(self) -> AmiParser:
        return self.connection.session.parser

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.closed = False
        self.connection.session.connection_made()

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        sink = connection.raw_sink
        if sink is not None:
            sink(data)
        outputs = connection.session.receive(data, time.monotonic())
        if outputs:
            connection.dispatch(outputs)

    def send(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise AmiNotConnected(self.connection.name)
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.connection.session_lost(exc)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class AmiConnection:
    """One AMI session to one Asterisk server, kept up for as long as ctid runs."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        username: str,
        secret: str,
        ssl: bool = False,
        action_timeout: float = 10.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        ping_interval: float = 20.0,
        stale_after: float | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        on_event: Callable[[ev.AmiEvent], None] | None = None,
        on_resync: Callable[[ResyncSnapshot], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        raw_sink: Callable[[bytes], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.ssl = ssl
        self._username = username
        self._secret = secret
        self.action_timeout = action_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.ping_interval = ping_interval
        self.max_message_bytes = max_message_bytes
        # with no whole message this long (a Ping answer comes every interval), a session is not live: it is
        # dropped and redone; a Ping may wait behind a backlog of events, but not for PONG_GRACE times that
        self.stale_after = stale_after if stale_after is not None else 2 * ping_interval
        self.on_event_cb = on_event
        self.on_resync_cb = on_resync
        self.on_disconnect_cb = on_disconnect
        self.raw_sink = raw_sink
        self.session = AmiSession(
            action_timeout=action_timeout,
            stale_after=self.stale_after,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            max_message_bytes=max_message_bytes,
            rng=rng or random.Random(),
        )
        self.protocol: CtidAmiProtocol | None = None
        self.synced = asyncio.Event()
        self.reconnects = 0
        AMI_EVENTS.sources[name] = lambda: self.session.event_counts
        self._futures: dict[str, tuple[asyncio.Future[ActionCompleted], asyncio.TimerHandle]] = {}
        self._resynced: asyncio.Future[ResyncSnapshot] | None = None
        self._had_login = False  # this TCP session logged in: its loss is a disconnect for the state model
        self._lost: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._log = log.bind(server=name)

    # ---- the session's state, read through ----------------------------------------------------------

    @property
    def logged_in(self) -> bool:
        return self.session.logged_in

    @property
    def event_counts(self) -> dict[str, int]:
        """By event name (COUNTED_EVENTS, else OTHER_EVENTS), across reconnects."""
        return self.session.event_counts

    @property
    def last_message(self) -> float:
        return self.session.last_message

    @property
    def last_pong(self) -> float:
        return self.session.last_pong

    @property
    def live(self) -> bool:
        """Logged in, a whole message from Asterisk within `stale_after`, and Ping answered (PONG_GRACE)."""
        return self.session.liveness(time.monotonic()).live

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Connect, and keep reconnecting until close()."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ami-{self.name}")
        return self._task

    async def close(self) -> None:
        self._stopping = True
        if self.protocol is not None and self.logged_in:
            with contextlib.suppress(AmiError):
                await self.action("Logoff", timeout=1.0)
        if self.protocol is not None:
            self.protocol.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def drop(self) -> None:
        """Cut the TCP connection as a network fault would (tests); the run loop reconnects."""
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.abort()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(lambda: CtidAmiProtocol(self), self.host, self.port, ssl=self.ssl),
                    timeout=self.action_timeout,
                )
                self.protocol = protocol
                self._lost = loop.create_future()
                await self._login()
                await self._resync()
                self._log.info("ami_ready", reconnects=self.reconnects)
                pinger = loop.create_task(self._ping_loop())
                try:
                    await self._lost
                finally:
                    pinger.cancel()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, AmiError) as exc:
                self._log.warning(
                    "ami_connect_failed", error=str(exc) or type(exc).__name__, attempt=self.session.attempt
                )
            finally:
                self._session_closed()
            if self._stopping:
                break
            delay = self.session.next_reconnect_delay()
            self.reconnects += 1
            AMI_RECONNECTS.labels(self.name).inc()
            self._log.info("ami_reconnecting", delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _login(self) -> None:
        await self.action("Login", Username=self._username, Secret=self._secret, Events="on")

    async def _resync(self) -> None:
        """Let the session read Asterisk's lists; on_resync runs, then the events held meanwhile follow."""
        assert self.protocol is not None
        self._resynced = asyncio.get_running_loop().create_future()
        self._write(self.session.begin_resync(time.monotonic()))
        try:
            await self._resynced
        finally:
            self._resynced = None
        self.synced.set()

    async def _ping_loop(self) -> None:
        """Ping every interval; a session gone silent (or that leaves a Ping unanswered) is dropped."""
        interval = self.ping_interval
        timeout = min(self.action_timeout, self.stale_after)
        while True:
            due = time.monotonic() + interval
            await asyncio.sleep(interval)
            if time.monotonic() - due > interval / 2:
                # ctid's own loop was held up (a long GC, a heavy request): what Asterisk sent meanwhile may
                # still wait unread in the socket, so this silence is not Asterisk's; judge at the next tick
                self._log.info("ami_ping_loop_late", late_s=round(time.monotonic() - due, 3))
                continue
            liveness = self.session.liveness(time.monotonic())
            if not liveness.live:
                self._log.warning(
                    "ami_stalled",
                    silent_s=round(liveness.silent_s, 3),
                    unanswered_ping_s=round(liveness.unanswered_ping_s, 3),
                )
                self.drop()
                return
            try:
                await self.action("Ping", timeout=timeout)
            except AmiTimeout:
                if time.monotonic() - self.last_message < timeout:
                    # events still flow: the answer waits behind a backlog of them; `live` bounds the wait
                    self._log.info("ami_ping_late")
                    continue
                self._log.warning("ami_ping_timeout")
                self.drop()
                return
            except AmiActionError:
                pass  # an error is still an answer (the session noted it in last_pong)
            except AmiError:
                return

    def session_lost(self, exc: Exception | None) -> None:
        self._log.warning("ami_connection_lost", error=str(exc) if exc else None)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        # a login or resync waiting on an answer learns now, not at its timeout
        self._fail_all()

    def _fail_all(self) -> None:
        self.dispatch(list(self.session.connection_lost(f"{self.name}: connection lost")))
        for future, timer in self._futures.values():
            timer.cancel()
            if not future.done():
                future.set_exception(AmiNotConnected(f"{self.name}: connection lost"))
        self._futures.clear()
        if self._resynced is not None and not self._resynced.done():
            self._resynced.set_exception(AmiNotConnected(f"{self.name}: connection lost"))

    def _session_closed(self) -> None:
        was_ready, self._had_login = self._had_login, False
        self.synced.clear()
        AMI_CONNECTED.labels(self.name).set(0)
        if self.protocol is not None:
            self.protocol.close()
        self._fail_all()
        if was_ready and self.on_disconnect_cb is not None:
            self.on_disconnect_cb()

    # ---- actions ----------------------------------------------------------------------------------

    def _write(self, send: SendData) -> None:
        assert self.protocol is not None
        self.protocol.send(send.data)
        asyncio.get_running_loop().call_later(
            max(0.0, send.deadline - time.monotonic()), self._expire, send.deadline
        )

    def _expire(self, deadline: float) -> None:
        # the timer may fire a hair before the deadline by the session's clock: judge at the deadline
        self.dispatch(self.session.timeouts(max(time.monotonic(), deadline)))

    def _send(
        self, action: str, headers: dict[str, Any], is_list: bool, timeout: float | None
    ) -> asyncio.Future[ActionCompleted]:
        protocol = self.protocol
        if protocol is None or protocol.closed:
            raise AmiNotConnected(self.name)
        now = time.monotonic()
        action_id, data = self.session.send_action(action, headers, now, is_list=is_list, timeout=timeout)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ActionCompleted] = loop.create_future()
        deadline = now + (timeout or self.action_timeout)
        timer = loop.call_later(timeout or self.action_timeout, self._expire, deadline)
        self._futures[action_id] = (future, timer)
        protocol.send(data)
        return future

    async def _await(self, action: str, future: asyncio.Future[ActionCompleted]) -> ActionCompleted:
        started = time.perf_counter()
        try:
            return await future
        finally:
            AMI_ACTION_SECONDS.labels(self.name, action).observe(time.perf_counter() - started)

    async def action(self, action: str, timeout: float | None = None, **headers: Any) -> AmiMessage:
        """Send an action and return its response; Response: Error raises AmiActionError."""
        done = await self._await(action, self._send(action, headers, False, timeout))
        if not done.ok:
            raise AmiActionError(f"{action}: {done.message}", done.message, dict(done.response.headers))
        return done.response

    async def listed_channels(self) -> set[str]:
        """The uniqueids of the channels Asterisk has now (CoreShowChannels), for the stale-channel check."""
        items = await self.list_action("CoreShowChannels")
        return {uid for item in items if (uid := item.get("Uniqueid"))}

    async def list_action(
        self, action: str, timeout: float | None = None, **headers: Any
    ) -> list[AmiMessage]:
        """A list action's items; an Error answer (ExtensionStateList with no hints) is an empty list."""
        done = await self._await(action, self._send(action, headers, True, timeout))
        return list(done.items)

    # ---- what the session gives out ----------------------------------------------------------------

    def dispatch(self, outputs: list[SessionOutput]) -> None:
        """Events to on_event (the hot path: one set lookup each), everything else to _control."""
        on_event = self.on_event_cb
        control = CONTROL_OUTPUTS
        for out in outputs:
            if type(out) in control:
                self._control(out)
                on_event = self.on_event_cb
            elif on_event is not None:
                try:
                    on_event(out)  # type: ignore[arg-type]
                except Exception:  # one bad event never takes the connection down
                    self._log.exception("ami_event_handler_failed", event=out.name)  # type: ignore[union-attr]

    def _control(self, out: SessionOutput) -> None:
        if isinstance(out, ActionCompleted | ActionFailed):
            entry = self._futures.pop(out.action_id, None)
            if entry is None:
                return
            future, timer = entry
            timer.cancel()
            if future.done():
                return
            if isinstance(out, ActionCompleted):
                future.set_result(out)
            elif out.timed_out:
                future.set_exception(AmiTimeout(f"{self.name}: no answer to {out.action}"))
            else:
                future.set_exception(AmiNotConnected(out.reason))
        elif isinstance(out, SendData):
            with contextlib.suppress(AmiNotConnected):  # the loss fails the resync on its own
                self._write(out)
        elif isinstance(out, LoggedIn):
            self._had_login = True
            AMI_CONNECTED.labels(self.name).set(1)
            self._log.info("ami_logged_in", message=out.message)
        elif isinstance(out, ResyncReady):
            self._resync_ready(out)
        elif isinstance(out, ResyncFailed):
            if self._resynced is not None and not self._resynced.done():
                self._resynced.set_exception(AmiTimeout(f"{self.name}: {out.reason}"))
        elif isinstance(out, Malformed):
            AMI_MALFORMED.labels(self.name).inc(out.count)
        elif isinstance(out, Notice):  # sizes only: the content may be anything
            self._log.warning(out.event, **out.fields)

    def _resync_ready(self, out: ResyncReady) -> None:
        snapshot = out.snapshot
        self._log.info("ami_resynced", channels=len(snapshot.channels), devices=len(snapshot.devices))
        failed: Exception | None = None
        if self.on_resync_cb is not None:
            try:
                self.on_resync_cb(snapshot)
            except Exception as exc:  # the snapshot was not taken: redo the session rather than run on
                self._log.exception("ami_resync_handler_failed")
                failed = AmiError(f"{self.name}: resync handler failed: {type(exc).__name__}")
        if self._resynced is not None and not self._resynced.done():
            if failed is None:
                self._resynced.set_result(snapshot)
            else:
                self._resynced.set_exception(failed)
