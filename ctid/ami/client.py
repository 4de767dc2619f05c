"""The connection to one Asterisk server: a panoramisk Manager with ctid's own protocol, ActionID correlation,
list actions, reconnect with exponential backoff and jitter, and a full resync after every (re)connect."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.ami.parser import MAX_MESSAGE_BYTES, AmiParser
from ctid.errors import AmiActionError, AmiError, AmiNotConnected, AmiTimeout
from ctid.metrics import AMI_ACTION_SECONDS, AMI_CONNECTED, AMI_EVENTS, AMI_MALFORMED, AMI_RECONNECTS

log = structlog.get_logger("ctid.ami")

# variables read back from every channel at resync, so queue and customer survive a reconnect
RESYNC_VARIABLES = "CTID_QUEUE,CTID_CUSTOMER,CTID_TIER,CTID_CAMPAIGN,CTID_CONTACT,AMDSTATUS"

# Event names counted under their own name in ctid_ami_events_total: those ctid decodes or skips on purpose,
# those the transcripts of a real Asterisk show, and Asterisk's other common ones. Any other name is counted
# as OTHER_EVENTS, so a peer inventing names cannot grow the metric (or this process) without bound.
COUNTED_EVENTS = ev.STATE_EVENTS | frozenset(
    {
        "AgentCalled",
        "AgentComplete",
        "AgentConnect",
        "AgentRingNoAnswer",
        "AGIExecEnd",
        "AGIExecStart",
        "AsyncAGIEnd",
        "AsyncAGIExec",
        "AsyncAGIStart",
        "BridgeCreate",
        "Cdr",
        "CEL",
        "ChallengeResponseFailed",
        "ChallengeSent",
        "ContactStatus",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "DeviceStateListComplete",
        "DialState",
        "DTMFBegin",
        "DTMFEnd",
        "ExtensionStateListComplete",
        "ExtensionStatus",
        "FailedACL",
        "FullyBooted",
        "HangupHandlerPop",
        "HangupHandlerPush",
        "HangupHandlerRun",
        "HangupRequest",
        "InvalidAccountID",
        "InvalidPassword",
        "LocalBridge",
        "LocalOptimizationBegin",
        "LocalOptimizationEnd",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
        "NewAccountCode",
        "NewConnectedLine",
        "PeerStatus",
        "QueueCallerAbandon",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueMemberStatus",
        "Registry",
        "Reload",
        "RequestBadFormat",
        "RequestNotAllowed",
        "RTCPReceived",
        "RTCPSent",
        "SoftHangupRequest",
        "Status",
        "StatusComplete",
        "SuccessfulAuth",
        "UnexpectedAddress",
        "UserEvent",
    }
)
OTHER_EVENTS = "other"
PONG_GRACE = 3  # a Ping answer may come this many stale_after late while events keep flowing


@dataclass(frozen=True, slots=True)
class ResyncSnapshot:
    """Asterisk's own view after a (re)connect, before live events are trusted."""

    channels: list[ev.CoreShowChannel]
    statuses: list[ev.ChannelStatus]
    devices: list[ev.DeviceStateChange]
    extensions: list[ev.ExtensionStatus]
    server_time: float | None  # Asterisk's clock (Ping's Timestamp), so ages agree with event times


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class CtidAmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol slot, filled with ctid's parser: whole UTF-8 messages, typed at the boundary."""

    def __init__(self, connection: AmiConnection) -> None:
        self.connection = connection
        self.parser = AmiParser(max_message_bytes=connection.max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.closed = False

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        sink = connection.raw_sink
        if sink is not None:
            sink(data)
        parser = self.parser
        before = parser.malformed_lines + parser.malformed_blocks
        messages = parser.feed(data)
        if parser.malformed_lines + parser.malformed_blocks != before:
            AMI_MALFORMED.labels(connection.name).inc(
                parser.malformed_lines + parser.malformed_blocks - before
            )
            for notice, sizes in parser.notices:  # sizes only: the content may be anything
                connection._log.warning(notice, **sizes)
            parser.notices.clear()
        if messages:
            connection.last_message = time.monotonic()
            connection.handle_messages(messages)

    def send_message(self, msg: AmiMessage) -> None:
        if self.transport is None or self.closed:
            raise AmiNotConnected(self.connection.name)
        self.transport.write(msg.to_bytes())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.connection.session_lost(exc)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[tuple[AmiMessage, list[AmiMessage]]]
    is_list: bool
    action: str
    sent_at: float
    response: AmiMessage | None = None
    items: list[AmiMessage] = field(default_factory=list)


class AmiConnection(Manager):  # type: ignore[misc]
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
        super().__init__(
            host=host,
            port=port,
            ssl=ssl,
            username=username,
            secret=secret,
            events="on",
            ping_delay=ping_interval,
            ping_interval=ping_interval,
            reconnect_timeout=reconnect_min,
            protocol_factory=CtidAmiProtocol,
        )
        self.name = name
        self.action_timeout = action_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.on_event_cb = on_event
        self.on_resync_cb = on_resync
        self.on_disconnect_cb = on_disconnect
        self.raw_sink = raw_sink
        self.max_message_bytes = max_message_bytes
        # with no whole message this long (a Ping answer comes every interval), a session is not live: it is
        # dropped and redone; a Ping may wait behind a backlog of events, but not for PONG_GRACE times that
        self.stale_after = stale_after if stale_after is not None else 2 * ping_interval
        self.last_message = 0.0  # time.monotonic() of the last whole message from Asterisk
        self.last_pong = 0.0  # time.monotonic() of the last answer to a Ping (or of the login)
        self.protocol: CtidAmiProtocol | None = None
        self.logged_in = False
        self.synced = asyncio.Event()
        self.reconnects = 0
        self._lists_open = 0
        self._buffer: list[ev.AmiEvent] | None = None  # events held back while a resync runs
        self._buffering = False
        self.event_counts: dict[str, int] = {}  # by event name (COUNTED_EVENTS, else OTHER_EVENTS)
        AMI_EVENTS.sources[name] = lambda: self.event_counts
        self._rng = rng or random.Random()
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._lost: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._log = log.bind(server=name)

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

    @property
    def live(self) -> bool:
        """Logged in, a whole message from Asterisk within `stale_after`, and Ping answered (PONG_GRACE)."""
        now = time.monotonic()
        return (
            self.logged_in
            and now - self.last_message <= self.stale_after
            and now - self.last_pong <= PONG_GRACE * self.stale_after
        )

    def drop(self) -> None:
        """Cut the TCP connection as a network fault would (tests); the run loop reconnects."""
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.abort()

    async def _run(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: CtidAmiProtocol(self),
                        self.config["host"],
                        self.config["port"],
                        ssl=self.config["ssl"],
                    ),
                    timeout=self.action_timeout,
                )
                self.protocol = protocol
                self._lost = loop.create_future()
                await self._login()
                await self._resync()
                attempt = 0
                self._log.info("ami_ready", reconnects=self.reconnects)
                pinger = loop.create_task(self._ping_loop())
                try:
                    await self._lost
                finally:
                    pinger.cancel()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, AmiError) as exc:
                self._log.warning("ami_connect_failed", error=str(exc) or type(exc).__name__, attempt=attempt)
            finally:
                self._session_closed()
            if self._stopping:
                break
            delay = min(self.reconnect_max, self.reconnect_min * (2**attempt)) * self._rng.uniform(0.5, 1.5)
            attempt = min(attempt + 1, 16)
            self.reconnects += 1
            AMI_RECONNECTS.labels(self.name).inc()
            self._log.info("ami_reconnecting", delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _login(self) -> None:
        resp = await self.action(
            "Login", Username=self.config["username"], Secret=self.config["secret"], Events="on"
        )
        self.logged_in = True
        self.last_pong = self.last_message = time.monotonic()
        AMI_CONNECTED.labels(self.name).set(1)
        self._log.info("ami_logged_in", message=resp.get("Message"))

    async def _resync(self) -> None:
        """Read Asterisk's own lists, hand them over, then apply the events that came after the snapshot.

        Events that arrive once CoreShowChannels has answered describe changes the snapshot does not
        show yet (a caller who hangs up or arrives meanwhile), so they wait and follow it.
        """
        try:
            server_time = _float((await self.action("Ping")).get("Timestamp"))
        except AmiActionError:
            server_time = None
        self._buffer = []
        try:
            channels = await self.list_action("CoreShowChannels")
            statuses = await self.list_action("Status", Variables=RESYNC_VARIABLES)
            devices = await self.list_action("DeviceStateList")
            extensions = await self.list_action("ExtensionStateList")
            snapshot = ResyncSnapshot(
                channels=[e for e in map(ev.decode_event, channels) if isinstance(e, ev.CoreShowChannel)],
                statuses=[e for e in map(ev.decode_event, statuses) if isinstance(e, ev.ChannelStatus)],
                devices=[e for e in map(ev.decode_event, devices) if isinstance(e, ev.DeviceStateChange)],
                extensions=[e for e in map(ev.decode_event, extensions) if isinstance(e, ev.ExtensionStatus)],
                server_time=server_time,
            )
            self._log.info("ami_resynced", channels=len(snapshot.channels), devices=len(snapshot.devices))
            if self.on_resync_cb is not None:
                self.on_resync_cb(snapshot)
        finally:
            held, self._buffer, self._buffering = self._buffer, None, False
        for event in held or ():
            self._deliver(event)
        self.synced.set()

    async def _ping_loop(self) -> None:
        """Ping every interval; a session gone silent (or that leaves a Ping unanswered) is dropped."""
        interval = float(self.config["ping_interval"])
        timeout = min(self.action_timeout, self.stale_after)
        while True:
            due = time.monotonic() + interval
            await asyncio.sleep(interval)
            if time.monotonic() - due > interval / 2:
                # ctid's own loop was held up (a long GC, a heavy request): what Asterisk sent meanwhile may
                # still wait unread in the socket, so this silence is not Asterisk's; judge at the next tick
                self._log.info("ami_ping_loop_late", late_s=round(time.monotonic() - due, 3))
                continue
            if not self.live:
                now = time.monotonic()
                self._log.warning(
                    "ami_stalled",
                    silent_s=round(now - self.last_message, 3),
                    unanswered_ping_s=round(now - self.last_pong, 3),
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
                pass  # an error is still an answer (handle_message noted it in last_pong)
            except AmiError:
                return

    def session_lost(self, exc: Exception | None) -> None:
        self._log.warning("ami_connection_lost", error=str(exc) if exc else None)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        # a login or resync waiting on an answer learns now, not at its timeout
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiNotConnected(f"{self.name}: connection lost"))

    def _session_closed(self) -> None:
        was_ready = self.logged_in
        self.logged_in = False
        self.synced.clear()
        AMI_CONNECTED.labels(self.name).set(0)
        if self.protocol is not None:
            self.protocol.close()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiNotConnected(f"{self.name}: connection lost"))
        self._pending.clear()
        self._lists_open = 0
        if was_ready and self.on_disconnect_cb is not None:
            self.on_disconnect_cb()

    # ---- actions ----------------------------------------------------------------------------------

    def _send(self, action: str, headers: dict[str, Any], is_list: bool) -> _Pending:
        if self.protocol is None or self.protocol.closed:
            raise AmiNotConnected(self.name)
        action_id = f"ctid-{next(self._ids)}"
        msg = AmiMessage.build(("Action", action), {"ActionID": action_id, **headers})
        future: asyncio.Future[tuple[AmiMessage, list[AmiMessage]]] = (
            asyncio.get_running_loop().create_future()
        )
        pending = _Pending(future, is_list, action, time.perf_counter())
        self._pending[action_id] = pending
        if is_list:
            self._lists_open += 1
        self.protocol.send_message(msg)
        return pending

    async def _await(self, pending: _Pending, timeout: float | None) -> tuple[AmiMessage, list[AmiMessage]]:
        try:
            return await asyncio.wait_for(pending.future, timeout or self.action_timeout)
        except TimeoutError as exc:
            raise AmiTimeout(f"{self.name}: no answer to {pending.action}") from exc
        finally:
            AMI_ACTION_SECONDS.labels(self.name, pending.action).observe(
                time.perf_counter() - pending.sent_at
            )

    async def action(self, action: str, timeout: float | None = None, **headers: Any) -> AmiMessage:
        """Send an action and return its response; Response: Error raises AmiActionError."""
        pending = self._send(action, headers, is_list=False)
        response, _ = await self._await(pending, timeout)
        if response.name == "Error":
            message = response.get("Message", "")
            raise AmiActionError(f"{action}: {message}", message, response.headers)
        return response

    async def listed_channels(self) -> set[str]:
        """The uniqueids of the channels Asterisk has now (CoreShowChannels), for the stale-channel check."""
        items = await self.list_action("CoreShowChannels")
        return {uid for item in items if (uid := item.get("Uniqueid"))}

    async def list_action(
        self, action: str, timeout: float | None = None, **headers: Any
    ) -> list[AmiMessage]:
        """A list action's items; an Error answer (ExtensionStateList with no hints) is an empty list."""
        pending = self._send(action, headers, is_list=True)
        _, items = await self._await(pending, timeout)
        return items

    # ---- incoming ---------------------------------------------------------------------------------

    def handle_messages(self, messages: list[AmiMessage]) -> None:
        """The hot path: live events straight to the state model, anything else through handle_message."""
        counts = self.event_counts
        on_event = self.on_event_cb
        relevant = ev.relevant
        relevance = ev.RELEVANCE.get
        decode = ev.decode_event
        # only handle_message can open or close a list here (the resync task cannot run during this loop)
        slow = self._lists_open or self._buffering or on_event is None
        for msg in messages:
            kind, name = msg.first
            if slow or kind != "Event":
                self.handle_message(msg)
                slow = self._lists_open or self._buffering or on_event is None
                continue
            count = counts.get(name)
            if count is not None:
                counts[name] = count + 1
            else:
                self._count_new(name)
            if relevance(name) == 1 or relevant(msg):
                try:
                    on_event(decode(msg))  # type: ignore[misc]
                except Exception:  # one bad event never takes the connection down
                    self._log.exception("ami_event_handler_failed", event=name)

    def handle_message(self, msg: AmiMessage) -> None:
        """Route one message: a list item or a response to its action, an event to the state model."""
        kind, name = msg.first
        if kind == "Event":
            if self._lists_open:
                action_id = msg.get("ActionID")
                pending = self._pending.get(action_id) if action_id is not None else None
                if pending is not None and pending.is_list:
                    if name.endswith("Complete") or msg.get("EventList") == "Complete":
                        self._finish(action_id, pending)  # type: ignore[arg-type]
                    else:
                        pending.items.append(msg)
                    return
            count = self.event_counts.get(name)
            if count is not None:
                self.event_counts[name] = count + 1
            else:
                self._count_new(name)
            if self.on_event_cb is not None and ev.relevant(msg):
                event = ev.decode_event(msg)
                if self._buffering and self._buffer is not None:
                    self._buffer.append(event)
                else:
                    self._deliver(event)
        elif kind == "Response":
            action_id = msg.get("ActionID")
            pending = self._pending.get(action_id) if action_id is not None else None
            if pending is None:
                return
            pending.response = msg
            if pending.action == "Ping":
                self.last_pong = time.monotonic()  # even after its timeout: a late answer is an answer
            if pending.action == "CoreShowChannels" and self._buffer is not None:
                self._buffering = True  # the snapshot is taken: later events follow it
            if not pending.is_list or msg.name == "Error" or msg.headers.get("EventList") != "start":
                self._finish(action_id, pending)  # type: ignore[arg-type]

    def _count_new(self, name: str) -> None:
        """The first of an event name: counted under its own name only if it is a known one."""
        key = name if name in COUNTED_EVENTS else OTHER_EVENTS
        self.event_counts[key] = self.event_counts.get(key, 0) + 1

    def _deliver(self, event: ev.AmiEvent) -> None:
        assert self.on_event_cb is not None
        try:
            self.on_event_cb(event)
        except Exception:  # one bad event never takes the connection down
            self._log.exception("ami_event_handler_failed", event=event.name)

    def _finish(self, action_id: str, pending: _Pending) -> None:
        del self._pending[action_id]
        if pending.is_list:
            self._lists_open -= 1
        if not pending.future.done():
            response = pending.response or AmiMessage([("Response", "Success")])
            pending.future.set_result((response, pending.items))
