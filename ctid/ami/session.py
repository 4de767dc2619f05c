"""The AMI session without I/O: bytes and a clock in, typed outputs out (in the spirit of h11's Connection).

`AmiSession` owns what one session to one Asterisk server has to remember: the parser, ActionIDs and the
actions waiting on them (with their deadlines), the events collected for list actions, the resync sequence
(Ping, then Asterisk's four lists) with the events held back while it runs, liveness, event counts and the
reconnect backoff schedule. It never reads a socket or a clock: the asyncio shell (`ctid.ami.client`) feeds
it what arrived and the time, writes what it is told to, and schedules timers at the deadlines it is given.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.ami.parser import MAX_MESSAGE_BYTES, AmiParser

# variables read back from every channel at resync, so queue and customer survive a reconnect
RESYNC_VARIABLES = "CTID_QUEUE,CTID_CUSTOMER,CTID_TIER,CTID_CAMPAIGN,CTID_CONTACT,AMDSTATUS"

# the resync sequence, in order: Ping for Asterisk's clock, then the lists that make the snapshot
RESYNC_ACTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("Ping", {}),
    ("CoreShowChannels", {}),
    ("Status", {"Variables": RESYNC_VARIABLES}),
    ("DeviceStateList", {}),
    ("ExtensionStateList", {}),
)

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
MAX_BACKOFF_EXPONENT = 16


@dataclass(frozen=True, slots=True)
class ResyncSnapshot:
    """Asterisk's own view after a (re)connect, before live events are trusted."""

    channels: list[ev.CoreShowChannel]
    statuses: list[ev.ChannelStatus]
    devices: list[ev.DeviceStateChange]
    extensions: list[ev.ExtensionStatus]
    server_time: float | None  # Asterisk's clock (Ping's Timestamp), so ages agree with event times


# ---- outputs ------------------------------------------------------------------------------------------
# An event to deliver is the typed `ev.AmiEvent` itself (the hot path allocates no wrapper); the rest are:


@dataclass(frozen=True, slots=True)
class ActionCompleted:
    """Asterisk answered an action: its response and, for a list action, the events it listed."""

    action_id: str
    action: str
    response: AmiMessage
    items: tuple[AmiMessage, ...] = ()
    sent_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.response.name != "Error"

    @property
    def message(self) -> str:
        """Asterisk's own words (`Message:`), for a success or an error."""
        return self.response.get("Message", "")


@dataclass(frozen=True, slots=True)
class ActionFailed:
    """No answer: the action's deadline passed (`timed_out`) or the session was lost."""

    action_id: str
    action: str
    reason: str
    timed_out: bool
    sent_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SendData:
    """Bytes the session needs written (the next resync action), with the deadline of their answer."""

    data: bytes
    deadline: float


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """Asterisk accepted the Login: the session is up and the backoff starts again from its minimum."""

    message: str


@dataclass(frozen=True, slots=True)
class ResyncReady:
    """The snapshot is complete; the events after it in the same output list were held while it ran."""

    snapshot: ResyncSnapshot
    held: int


@dataclass(frozen=True, slots=True)
class ResyncFailed:
    """A resync action went unanswered: the session cannot be trusted and should be redone."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the shell should log once (an oversized or cut message), with sizes, never content."""

    event: str
    fields: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Malformed:
    """Lines or blocks the parser skipped since the last receive()."""

    count: int


SessionOutput = (
    ev.AmiEvent
    | ActionCompleted
    | ActionFailed
    | SendData
    | LoggedIn
    | ResyncReady
    | ResyncFailed
    | Notice
    | Malformed
)
# the outputs that are not events, for a shell telling them apart with one set lookup per output
CONTROL_OUTPUTS: frozenset[type] = frozenset(
    {ActionCompleted, ActionFailed, SendData, LoggedIn, ResyncReady, ResyncFailed, Notice, Malformed}
)


@dataclass(frozen=True, slots=True)
class Liveness:
    """Whether the session is live now, and the silences that decide it."""

    live: bool
    silent_s: float  # since the last whole message
    unanswered_ping_s: float  # since the last answer to a Ping (or the login)


@dataclass(slots=True)
class _Pending:
    action: str
    is_list: bool
    sent_at: float
    deadline: float
    resync: bool = False
    expired: bool = False  # timed out, kept so that a late answer (and its list items) is recognised
    response: AmiMessage | None = None
    items: list[AmiMessage] = field(default_factory=list)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class AmiSession:
    """One AMI session's state, driven by bytes in and a clock passed in; no sockets, no sleeps."""

    def __init__(
        self,
        *,
        action_timeout: float = 10.0,
        stale_after: float = 40.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        rng: random.Random | None = None,
        id_prefix: str = "ctid-",
    ) -> None:
        self.action_timeout = action_timeout
        self.stale_after = stale_after
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.max_message_bytes = max_message_bytes
        self.rng = rng  # jitter of the backoff; None: the plain doubling schedule
        self.id_prefix = id_prefix
        self.parser = AmiParser(max_message_bytes=max_message_bytes)
        self.event_counts: dict[str, int] = {}  # by event name (COUNTED_EVENTS, else OTHER_EVENTS)
        self.logged_in = False
        self.last_message = 0.0  # clock of the last whole message from Asterisk
        self.last_pong = 0.0  # clock of the last answer to a Ping (or of the login)
        self.attempt = 0  # failed connects since the last login, for the backoff schedule
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._lists_open = 0
        self._resync_step = -1  # index in RESYNC_ACTIONS of the action waited on; -1: no resync running
        self._resync_results: list[ActionCompleted] = []
        self._held: list[ev.AmiEvent] | None = None  # events held back while a resync runs
        self._holding = False

    # ---- connection lifecycle ---------------------------------------------------------------------

    def connection_made(self) -> None:
        """A new TCP session: a fresh parser (expecting Asterisk's banner), nothing pending."""
        self.parser = AmiParser(max_message_bytes=self.max_message_bytes)
        self.logged_in = False
        self._pending.clear()
        self._lists_open = 0
        self._reset_resync()

    def connection_lost(self, reason: str = "connection lost") -> list[ActionFailed]:
        """The session is gone: every action still waiting fails now rather than at its deadline."""
        failed = [
            ActionFailed(aid, p.action, reason, timed_out=False, sent_at=p.sent_at)
            for aid, p in self._pending.items()
            if not p.expired and not p.resync
        ]
        self._pending.clear()
        self._lists_open = 0
        self.logged_in = False
        self._reset_resync()
        return failed

    def _reset_resync(self) -> None:
        self._resync_step = -1
        self._resync_results = []
        self._held = None
        self._holding = False

    # ---- actions ----------------------------------------------------------------------------------

    def send_action(
        self,
        name: str,
        headers: Mapping[str, object],
        now: float,
        is_list: bool = False,
        timeout: float | None = None,
    ) -> tuple[str, bytes]:
        """An ActionID and the bytes to write; the answer comes back from receive() as ActionCompleted."""
        return self._send(name, headers, now, is_list, timeout, resync=False)

    def _send(
        self,
        name: str,
        headers: Mapping[str, object],
        now: float,
        is_list: bool,
        timeout: float | None,
        resync: bool,
    ) -> tuple[str, bytes]:
        action_id = f"{self.id_prefix}{next(self._ids)}"
        data = AmiMessage.build(("Action", name), {"ActionID": action_id, **headers}).to_bytes()
        deadline = now + (timeout or self.action_timeout)
        self._pending[action_id] = _Pending(name, is_list, now, deadline, resync=resync)
        if is_list:
            self._lists_open += 1
        return action_id, data

    def deadline(self, action_id: str) -> float | None:
        pending = self._pending.get(action_id)
        return pending.deadline if pending is not None else None

    def timeouts(self, now: float) -> list[SessionOutput]:
        """The actions whose deadline has passed, as failures (a resync action's also as ResyncFailed)."""
        out: list[SessionOutput] = []
        for aid, pending in self._pending.items():
            if pending.expired or pending.deadline > now:
                continue
            pending.expired = True
            out.append(ActionFailed(aid, pending.action, "timeout", timed_out=True, sent_at=pending.sent_at))
            if pending.resync:
                self._reset_resync()
                out.append(ResyncFailed(f"no answer to {pending.action}"))
        return out

    # ---- resync -----------------------------------------------------------------------------------

    def begin_resync(self, now: float) -> SendData:
        """Start the resync: Ping for Asterisk's clock, then one list after another (see RESYNC_ACTIONS).

        Events that arrive once CoreShowChannels has answered describe changes the snapshot does not show
        yet (a caller who hangs up or arrives meanwhile), so they are held and follow ResyncReady.
        """
        self._reset_resync()
        self._held = []
        return self._resync_next(now)

    @property
    def resyncing(self) -> bool:
        return self._resync_step >= 0

    def _resync_next(self, now: float) -> SendData:
        self._resync_step += 1
        name, headers = RESYNC_ACTIONS[self._resync_step]
        action_id, data = self._send(name, headers, now, name != "Ping", None, resync=True)
        return SendData(data, self._pending[action_id].deadline)

    def _resync_answered(self, done: ActionCompleted, now: float, out: list[SessionOutput]) -> None:
        self._resync_results.append(done)
        if self._resync_step + 1 < len(RESYNC_ACTIONS):
            out.append(self._resync_next(now))
            return
        ping, channels, statuses, devices, extensions = self._resync_results
        snapshot = ResyncSnapshot(
            channels=[e for e in map(ev.decode_event, channels.items) if isinstance(e, ev.CoreShowChannel)],
            statuses=[e for e in map(ev.decode_event, statuses.items) if isinstance(e, ev.ChannelStatus)],
            devices=[e for e in map(ev.decode_event, devices.items) if isinstance(e, ev.DeviceStateChange)],
            extensions=[
                e for e in map(ev.decode_event, extensions.items) if isinstance(e, ev.ExtensionStatus)
            ],
            server_time=_float(ping.response.get("Timestamp")) if ping.ok else None,
        )
        held = self._held or []
        self._reset_resync()
        out.append(ResyncReady(snapshot, len(held)))
        out.extend(held)

    # ---- incoming ---------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[SessionOutput]:
        """What `data` (any slice of the stream) completes: events to deliver, answers, resync progress."""
        parser = self.parser
        before = parser.malformed_lines + parser.malformed_blocks
        messages = parser.feed(data)
        out: list[SessionOutput] = []
        skipped = parser.malformed_lines + parser.malformed_blocks - before
        if skipped:
            out.append(Malformed(skipped))
            out.extend(Notice(name, sizes) for name, sizes in parser.notices)
            parser.notices.clear()
        if not messages:
            return out
        self.last_message = now
        counts = self.event_counts
        relevant = ev.relevant
        relevance = ev.RELEVANCE.get
        decode = ev.decode_event
        append = out.append
        for msg in messages:
            kind, name = msg.first
            if kind != "Event" or self._lists_open or self._holding:
                self._message(msg, now, out)
                continue
            # the hot path: a live event, with no list collecting and no resync holding events back
            count = counts.get(name)
            if count is not None:
                counts[name] = count + 1
            else:
                self._count_new(name)
            if relevance(name) == 1 or relevant(msg):
                append(decode(msg))
        return out

    def _message(self, msg: AmiMessage, now: float, out: list[SessionOutput]) -> None:
        """One message off the hot path: a list item, an answer to an action, or an event to hold."""
        kind, name = msg.first
        if kind == "Event":
            if self._lists_open:
                action_id = msg.get("ActionID")
                pending = self._pending.get(action_id) if action_id is not None else None
                if pending is not None and pending.is_list:
                    if name.endswith("Complete") or msg.get("EventList") == "Complete":
                        self._finish(action_id, pending, now, out)  # type: ignore[arg-type]
                    else:
                        pending.items.append(msg)
                    return
            count = self.event_counts.get(name)
            if count is not None:
                self.event_counts[name] = count + 1
            else:
                self._count_new(name)
            if ev.relevant(msg):
                event = ev.decode_event(msg)
                if self._holding and self._held is not None:
                    self._held.append(event)
                else:
                    out.append(event)
        elif kind == "Response":
            action_id = msg.get("ActionID")
            pending = self._pending.get(action_id) if action_id is not None else None
            if pending is None:
                return
            pending.response = msg
            if pending.action == "Ping":
                self.last_pong = now  # even after its deadline: a late answer is an answer
            if pending.resync and pending.action == "CoreShowChannels" and self._held is not None:
                self._holding = True  # the snapshot is taken: later events follow it
            if not pending.is_list or msg.name == "Error" or msg.headers.get("EventList") != "start":
                self._finish(action_id, pending, now, out)  # type: ignore[arg-type]

    def _finish(self, action_id: str, pending: _Pending, now: float, out: list[SessionOutput]) -> None:
        del self._pending[action_id]
        if pending.is_list:
            self._lists_open -= 1
        if pending.expired:
            return  # its failure was already given out
        response = pending.response or AmiMessage([("Response", "Success")])
        # an Error answer to a list action (ExtensionStateList with no hints) is an empty list
        done = ActionCompleted(action_id, pending.action, response, tuple(pending.items), pending.sent_at)
        if pending.action == "Login" and done.ok:
            self.logged_in = True
            self.last_pong = self.last_message = now
            self.attempt = 0
            out.append(done)
            out.append(LoggedIn(done.message))
            return
        if pending.resync:
            self._resync_answered(done, now, out)
            return
        out.append(done)

    def _count_new(self, name: str) -> None:
        """The first of an event name: counted under its own name only if it is a known one."""
        key = name if name in COUNTED_EVENTS else OTHER_EVENTS
        self.event_counts[key] = self.event_counts.get(key, 0) + 1

    # ---- liveness and backoff ---------------------------------------------------------------------

    def liveness(self, now: float) -> Liveness:
        """Live: logged in, a whole message within `stale_after`, and a Ping answered (PONG_GRACE)."""
        silent = now - self.last_message
        unanswered = now - self.last_pong
        live = self.logged_in and silent <= self.stale_after and unanswered <= PONG_GRACE * self.stale_after
        return Liveness(live, silent, unanswered)

    def next_reconnect_delay(self) -> float:
        """The wait before the next connect: min doubling up to max (times jitter), reset by a login."""
        delay = reconnect_delay(self.attempt, self.reconnect_min, self.reconnect_max, self.rng)
        self.attempt = min(self.attempt + 1, MAX_BACKOFF_EXPONENT)
        return delay


def reconnect_delay(attempt: int, low: float, high: float, rng: random.Random | None = None) -> float:
    """The attempt-th wait: low * 2**attempt capped at high, times a uniform(0.5, 1.5) jitter from `rng`."""
    delay: float = min(high, low * (2 ** min(attempt, MAX_BACKOFF_EXPONENT)))
    return delay * rng.uniform(0.5, 1.5) if rng is not None else delay


def backoff(low: float, high: float, rng: random.Random | None = None) -> Iterator[float]:
    """The whole schedule as a generator: low, 2*low, 4*low, ... up to high, then high for ever."""
    for attempt in itertools.count():
        yield reconnect_delay(attempt, low, high, rng)
