"""The sans-I/O call-state model: `apply(event, now)` folds typed AMI events into channels, calls and agents.

A call is everything that shares a Linkedid. Its *contact* is the customer's channel: the one that runs
ctid's own contexts (ctid-inbound, ctid-outbound, ctid-wait, ctid-connect...). Whom the contact talks to is
read from bridge membership, following Local channel pairs, so answers, transfers and merges all come out
of one mechanism. An agent is a device: a channel name less its `-xxxxxxxx` / `;N` suffix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ctid import dialplan
from ctid.ami import events as ev
from ctid.ami.events import ChannelInfo, ChannelState
from ctid.state import domain as d

CTID_CONTEXTS = frozenset(
    {
        dialplan.INBOUND,
        dialplan.WAIT,
        dialplan.CONNECT,
        dialplan.AFTER,
        dialplan.TRANSFER,
        dialplan.OUTBOUND,
        dialplan.ABANDON,
        dialplan.CALLBACK,
        dialplan.VOICEMAIL,
    }
)
# where ctid sends a contact out of its queue (ctid.commands.SEND_CONTEXTS)
DEFLECT_CONTEXTS = {dialplan.CALLBACK: "callback", dialplan.VOICEMAIL: "voicemail"}
# variables ctid sets on the contact; Asterisk's own records then show where each call waited
TRACKED_VARIABLES = frozenset(
    {
        dialplan.QUEUE_VAR,
        dialplan.CUSTOMER_VAR,
        dialplan.TIER_VAR,
        dialplan.CAMPAIGN_VAR,
        dialplan.CONTACT_VAR,
        dialplan.SENT_TO_VAR,
        dialplan.CALLBACK_VAR,
        "AMDSTATUS",
    }
)
DEFAULT_QUEUE = "default"  # where a contact waits when no resolver says otherwise (replays without routing)
# (dialled number, CTID_QUEUE as the dialplan set it or '') -> the queue the contact waits in; the daemon
# builds it from routing.yaml (its dnis, else its default queue), so a caller whose IVR step failed is not
# left in a queue nobody serves; a dialer call keeps the queue its outbound step named
QueueResolver = Callable[[str, str], str]
# how long a dialer call whose channels are gone may wait for its OriginateResponse (Asterisk often sends
# the Hangups first)
ORIGINATE_GRACE_S = 10.0
DIAL_STATUS_DISPOSITIONS = {"BUSY": "busy", "NOANSWER": "no-answer", "CONGESTION": "congestion"}
# what a resync emits about calls already under way is marked adopted, so the log keeps them one contact
ADOPTABLE = (d.CallArrived, d.CallWaiting, d.CallConnected)


def device_of(channel: str) -> str:
    """`PJSIP/1001-0000000a` -> `PJSIP/1001`, `Local/1001@sim-phones-00000007;1` -> `Local/1001@sim-phones`.

    Channel names less their suffixes; ARCHITECTURE.md calls this the device.
    """
    name = channel
    semi = name.rfind(";")
    if semi > 0 and name[semi + 1 :].isdigit():
        name = name[:semi]
    dash = name.rfind("-")
    if dash > 0 and dash > name.find("/"):
        suffix = name[dash + 1 :]
        if suffix and all(c in "0123456789abcdef" for c in suffix):
            name = name[:dash]
    return name


def local_base(channel: str) -> str | None:
    """The pair name of a Local channel half (`Local/x@ctx-00000001`), None for other channels."""
    if channel.startswith("Local/") and channel[-2:] in (";1", ";2"):
        return channel[:-2]
    return None


def dialed_number(channel: str) -> str:
    """The number a channel was dialed to: `Local/h5550001@sim-callees-0000000c;1` -> `h5550001`."""
    _tech, _, rest = device_of(channel).partition("/")
    return rest.split("@", 1)[0] if "@" in rest else rest


class CallState(StrEnum):
    DIALING = "dialing"  # an outbound call not yet answered by the callee
    IVR = "ivr"
    WAITING = "waiting"
    RINGING = "ringing"
    CONNECTED = "connected"
    HELD = "held"
    AFTER = "after"  # the agent left; the caller is in ctid-after (survey) or about to hang up
    DEFLECTED = "deflected"  # sent out of the queue by ctid: callback offer, voicemail (METRICS.md)
    ENDED = "ended"


@dataclass(slots=True)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    state: ChannelState
    caller_num: str
    caller_name: str
    connected_num: str
    connected_name: str
    context: str
    exten: str
    created_at: float
    last_seen: float = 0.0  # the latest event about this channel (or Asterisk's list confirming it)
    application: str = ""
    app_data: str = ""
    bridge_id: str = ""

    @property
    def device(self) -> str:
        return device_of(self.name)

    def update(self, info: ChannelInfo) -> None:
        self.state = info.state
        self.caller_num = info.caller_num
        self.caller_name = info.caller_name
        self.connected_num = info.connected_num
        self.connected_name = info.connected_name
        if info.context:
            self.context = info.context
        self.exten = info.exten


@dataclass(slots=True)
class Call:
    linkedid: str
    started_at: float
    direction: d.Direction = d.Direction.INTERNAL
    state: CallState = CallState.IVR
    contact: str = ""  # uniqueid of the customer's channel
    contact_channel: str = ""
    caller_num: str = ""
    caller_name: str = ""
    dnis: str = ""
    queue: str = ""
    customer: str = ""
    tier: str = ""
    campaign: str = ""
    contact_id: str = ""
    amd: str = ""  # AMDSTATUS of an answered dialer call: HUMAN, MACHINE, NOTSURE
    callback: str = ""  # CTID_CALLBACK: the caller's answer to a callback offer (accepted, declined)
    sent_to: str = ""  # CTID_SENT_TO: where routing is sending the contact and why ("voicemail:closed")
    dialed: str = ""  # the device an Originate dialed, for matching its OriginateResponse
    originate_failed: bool = False
    agent: str = ""  # device of the agent now talking (or ringing)
    agent_channel: str = ""
    agents: list[str] = field(default_factory=list)  # every agent that talked, in order
    arrived_at: float | None = None  # the current queue stay's arrival
    waiting_since: float | None = None
    ring_started_at: float | None = None
    answered_at: float | None = None
    held_since: float | None = None
    hold_s: float = 0.0
    ended_at: float | None = None
    ended_by: str = ""
    disposition: str = ""
    cause: int = 0
    transfers: int = 0
    channels: set[str] = field(default_factory=set)  # live uniqueids
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        wait_from = self.waiting_since if self.state in (CallState.WAITING, CallState.RINGING) else None
        return {
            "linkedid": self.linkedid,
            "direction": self.direction.value,
            "state": self.state.value,
            "caller_num": self.caller_num,
            "caller_name": self.caller_name,
            "dnis": self.dnis,
            "queue": self.queue,
            "customer": self.customer,
            "tier": self.tier,
            "campaign": self.campaign,
            "amd": self.amd,
            "agent": self.agent,
            "agents": list(self.agents),
            "contact_channel": self.contact_channel,
            "started_at": self.started_at,
            "arrived_at": self.arrived_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "disposition": self.disposition,
            "transfers": self.transfers,
            "hold_s": round(self.hold_s, 3),
            "wait_s": round(now - wait_from, 3) if now is not None and wait_from is not None else None,
            "channels": len(self.channels),
        }


# device states that mean the phone is in use (a call, or ringing)
BUSY_DEVICE_STATES = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})


class PhoneStatus(StrEnum):
    """What a phone is doing, from its device state and calls (an agent's own state is ctid.agents')."""

    ON_CALL = "on_call"  # on a call ctid follows
    BUSY = "busy"  # in use otherwise (a personal call, ringing)
    UNAVAILABLE = "unavailable"  # unregistered or unknown to Asterisk
    IDLE = "idle"


@dataclass(slots=True)
class Phone:
    """An agent's phone as Asterisk shows it: a device, its device state, and the call it is on.

    Not the agent: their state (ready, paused, wrap-up...) is ctid.agents.AgentState, kept by the agent book.
    """

    device: str
    device_state: str = "UNKNOWN"
    call: str = ""  # linkedid
    since: float = 0.0
    handled: int = 0
    ring_no_answer: int = 0

    @property
    def status(self) -> PhoneStatus:
        if self.call:
            return PhoneStatus.ON_CALL
        if self.device_state in ("UNAVAILABLE", "INVALID"):
            return PhoneStatus.UNAVAILABLE
        if self.device_state in BUSY_DEVICE_STATES:
            return PhoneStatus.BUSY
        return PhoneStatus.IDLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "status": self.status.value,
            "device_state": self.device_state,
            "call": self.call,
            "since": self.since,
            "handled": self.handled,
            "ring_no_answer": self.ring_no_answer,
        }


Out = list[d.DomainEvent]


class CallStateModel:
    """All channels, bridges, calls and agents of one Asterisk server, folded from its AMI events."""

    def __init__(self, history: int | None = 10_000, queue_resolver: QueueResolver | None = None) -> None:
        self.queue_resolver = queue_resolver
        self.channels: dict[str, Channel] = {}  # uniqueid -> channel
        self.by_name: dict[str, str] = {}  # channel name -> uniqueid
        self.bridges: dict[str, set[str]] = {}  # bridge id -> uniqueids
        self.calls: dict[str, Call] = {}  # live calls by linkedid
        self.ended: deque[Call] = deque(maxlen=history)
        self.agents: dict[str, Phone] = {}  # agents' phones by device
        self.devices: dict[str, str] = {}  # every device state seen
        self.unknown_events: dict[str, int] = {}
        # uniqueids that hung up: Asterisk still sends a NewCallerid or two about them, which must not
        # bring them back
        self._gone: deque[str] = deque(maxlen=4096)
        self._gone_set: set[str] = set()
        # dialer calls that ended before Asterisk said why their Originate failed
        self._unresolved: deque[Call] = deque()
        # failed OriginateResponses that came before any channel of their call
        self._early_failures: deque[tuple[float, ev.OriginateResponse]] = deque()
        # calls the interaction log holds open (read at start): the first resync takes them up or ends them
        self._expected: dict[str, d.OpenCall] = {}
        self._resyncing = False
        self._handlers: dict[type[ev.AmiEvent], Callable[[Any, float, Out], None]] = {
            ev.Newchannel: self._on_newchannel,
            ev.Newstate: self._on_channel_update,
            ev.NewCallerid: self._on_channel_update,
            ev.NewConnectedLine: self._on_channel_update,
            ev.Newexten: self._on_newexten,
            ev.VarSet: self._on_varset,
            ev.Rename: self._on_rename,
            ev.DialBegin: self._on_dial_begin,
            ev.DialState: self._on_dial_state,
            ev.DialEnd: self._on_dial_end,
            ev.LocalBridge: self._on_local_bridge,
            ev.BridgeCreate: self._on_bridge_create,
            ev.BridgeEnter: self._on_bridge_enter,
            ev.BridgeLeave: self._on_bridge_leave,
            ev.BridgeMerge: self._on_bridge_merge,
            ev.BridgeDestroy: self._on_bridge_destroy,
            ev.Hold: self._on_hold,
            ev.Unhold: self._on_unhold,
            ev.MusicOnHoldStart: self._on_channel_update,
            ev.MusicOnHoldStop: self._on_channel_update,
            ev.BlindTransfer: self._on_blind_transfer,
            ev.AttendedTransfer: self._on_attended_transfer,
            ev.OriginateResponse: self._on_originate_response,
            ev.DeviceStateChange: self._on_device_state,
            ev.ExtensionStatus: self._ignore,
            ev.HangupRequest: self._ignore,  # who asked first is read from bridge leaves, not from these
            ev.SoftHangupRequest: self._ignore,
            ev.Hangup: self._on_hangup,
            ev.FullyBooted: self._ignore,
            ev.ListComplete: self._ignore,
            ev.Shutdown: self._ignore,
            ev.CoreShowChannel: self._ignore,  # resync lists go through resync()
            ev.ChannelStatus: self._ignore,
        }

    # ---- public API -------------------------------------------------------------------------------

    def apply(self, event: ev.AmiEvent, now: float) -> list[d.DomainEvent]:
        """Fold one AMI event; returns the domain events it caused (often none)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            self.unknown_events[event.name] = self.unknown_events.get(event.name, 0) + 1
            return []
        out: Out = []
        handler(event, now, out)
        if self._unresolved and now - (self._unresolved[0].ended_at or now) > ORIGINATE_GRACE_S:
            self._finish_dialed(self._unresolved.popleft(), out)
        return out

    def active_calls(self) -> list[Call]:
        return list(self.calls.values())

    def all_calls(self) -> list[Call]:
        """Ended calls (oldest first) then live ones."""
        return [*self.ended, *self._unresolved, *self.calls.values()]

    def call_of_channel(self, channel: str) -> Call | None:
        uid = self.by_name.get(channel)
        chan = self.channels.get(uid) if uid else None
        return self.calls.get(chan.linkedid) if chan else None

    def expect(self, calls: Iterable[d.OpenCall]) -> None:
        """Calls the interaction log holds open from an earlier run: the next resync takes up those Asterisk
        still has as the same calls and contacts, and ends the others as lost."""
        self._expected.update((call.linkedid, call) for call in calls)

    def resync(
        self,
        channels: Iterable[ev.CoreShowChannel],
        statuses: Iterable[ev.ChannelStatus],
        devices: Iterable[ev.DeviceStateChange],
        now: float,
        gone_at: float | None = None,
    ) -> list[d.DomainEvent]:
        """Rebuild from Asterisk's lists after a (re)connect: what vanished ended, what is new is adopted.

        `gone_at` is when ctid last saw the server (on Asterisk's clock, like `now`): calls that vanished
        since are ended as of then, lost (neither answered nor abandoned, as far as anyone can tell), and a
        queue arrival that happened out of sight is put then (or at the call's start, if later), so a wait
        spanning the gap is an upper bound, never a flattering one. CallArrived, CallWaiting and
        CallConnected emitted here are marked `adopted`: the log keeps a contact it holds open as the same.
        """
        gone = now if gone_at is None else min(gone_at, now)
        self._resyncing = True
        try:
            return self._resync(channels, statuses, devices, now, gone)
        finally:
            self._resyncing = False
            self._expected.clear()

    def _resync(
        self,
        channels: Iterable[ev.CoreShowChannel],
        statuses: Iterable[ev.ChannelStatus],
        devices: Iterable[ev.DeviceStateChange],
        now: float,
        gone: float,
    ) -> list[d.DomainEvent]:
        out: Out = []
        listed = {c.chan.uniqueid: c for c in channels}
        variables = {s.chan.uniqueid: dict(s.variables) for s in statuses}
        for uid in [u for u in self.channels if u not in listed]:
            self._remove_channel(self.channels[uid], gone, out, cause=0, lost=True)
        self.bridges.clear()
        known = set(self.calls)
        for uid, row in listed.items():
            info = row.chan
            chan = self.channels.get(uid)
            if chan is None:
                chan = self._add_channel(info, now - row.duration_s, out)
            chan.update(info)
            chan.application, chan.app_data = row.application, row.app_data
            chan.bridge_id = row.bridge_id
            if row.bridge_id:
                self.bridges.setdefault(row.bridge_id, set()).add(uid)
        for uid in listed:
            chan = self.channels[uid]
            call = self.calls.get(chan.linkedid)
            if call is None:
                continue
            for name, value in variables.get(uid, {}).items():
                if name in TRACKED_VARIABLES and value:
                    self._set_variable(call, chan, name, value, now, out)
            if chan.context in CTID_CONTEXTS:
                self._adopt_contact(call, chan, now, out)
                if chan.uniqueid == call.contact:
                    logged = (
                        None
                        if call.linkedid in known
                        else self._take_up(call, self._expected.get(call.linkedid))
                    )
                    arrival = max(call.started_at, gone) if logged is None else logged
                    self._resume_from_context(call, chan, now, out, arrival)
        for call in list(self.calls.values()):
            if call.contact:
                self._refresh_contact_state(call, now, out)
        for linkedid in self._expected:
            if linkedid not in self.calls:  # it ended while ctid was away
                out.append(d.CallEnded(gone, linkedid, 0, "", "lost"))
        for dev in devices:
            self._on_device_state(dev, now, out)
        return out

    def idle_channels(self, now: float, idle_s: float) -> list[str]:
        """Uniqueids of the channels without an event for `idle_s`: Asterisk is asked whether it has them."""
        cutoff = now - idle_s
        return [uid for uid, chan in self.channels.items() if chan.last_seen <= cutoff]

    def reap(self, listed: Iterable[str], now: float, idle_s: float) -> list[d.DomainEvent]:
        """Asterisk's channel list (CoreShowChannels) as asked for at `now`: an idle channel it no longer
        lists hung up unseen, so it goes and its call ends as lost; one it lists is kept and counts as seen.

        Channels with an event since `now - idle_s` are never touched: a list that raced a new call is safe.
        """
        out: Out = []
        present = set(listed)
        for uid in self.idle_channels(now, idle_s):
            chan = self.channels.get(uid)
            if chan is None:
                continue
            if uid in present:
                chan.last_seen = now
                continue
            call = self.calls.get(chan.linkedid)
            if call is not None:
                self._note(
                    call, now, "channel_reaped", channel=chan.name, idle_s=round(now - chan.last_seen, 3)
                )
            self._remove_channel(chan, now, out, cause=0, lost=True)
        return out

    def _take_up(self, call: Call, logged: d.OpenCall | None) -> float | None:
        """A call this model has not seen, as the log left it: still in a queue (returns its contact's
        arrive, which the stay keeps), or queued and answered before (no new stay unless it is back in
        ctid-wait)."""
        if logged is None or not logged.queued:
            return None
        if logged.arrived_at is not None:
            call.queue = call.queue or logged.queue
            return logged.arrived_at
        call.state = CallState.AFTER
        call.answered_at = call.started_at
        return None

    # ---- channels ---------------------------------------------------------------------------------

    def _add_channel(self, info: ChannelInfo, now: float, out: Out) -> Channel:
        chan = Channel(
            name=info.channel,
            uniqueid=info.uniqueid,
            linkedid=info.linkedid or info.uniqueid,
            state=info.state,
            caller_num=info.caller_num,
            caller_name=info.caller_name,
            connected_num=info.connected_num,
            connected_name=info.connected_name,
            context=info.context,
            exten=info.exten,
            created_at=now,
            last_seen=now,
        )
        self.channels[chan.uniqueid] = chan
        self.by_name[chan.name] = chan.uniqueid
        call = self.calls.get(chan.linkedid)
        if call is None:
            call = Call(linkedid=chan.linkedid, started_at=now)
            self.calls[chan.linkedid] = call
            self._note(call, now, "call_started", channel=chan.name)
        call.channels.add(chan.uniqueid)
        return chan

    def _chan(self, info: ChannelInfo, now: float, out: Out) -> Channel | None:
        """The channel an event is about; one never seen is adopted, one that hung up stays gone."""
        chan = self.channels.get(info.uniqueid)
        if chan is not None:
            chan.last_seen = now
        elif info.uniqueid not in self._gone_set:
            chan = self._add_channel(info, now, out)
        return chan

    def _on_newchannel(self, e: ev.Newchannel, now: float, out: Out) -> None:
        if e.chan.uniqueid not in self.channels:
            self._add_channel(e.chan, now, out)

    def _on_channel_update(self, e: ev.ChannelEvent, now: float, out: Out) -> None:
        chan = self._chan(e.chan, now, out)
        if chan is None:
            return
        chan.update(e.chan)
        call = self.calls.get(chan.linkedid)
        if call is not None and chan.uniqueid == call.contact and call.direction is d.Direction.INBOUND:
            if chan.caller_num:
                call.caller_num = chan.caller_num
            if chan.caller_name:
                call.caller_name = chan.caller_name

    def _on_rename(self, e: ev.Rename, now: float, out: Out) -> None:
        uid = self.by_name.pop(e.channel, None) or e.uniqueid
        chan = self.channels.get(uid)
        if chan is not None:
            chan.name = e.new_name
            self.by_name[e.new_name] = uid
            call = self.calls.get(chan.linkedid)
            if call is not None and call.contact == uid:
                call.contact_channel = e.new_name

    def _on_newexten(self, e: ev.Newexten, now: float, out: Out) -> None:
        chan = self._chan(e.chan, now, out)
        if chan is None:
            return
        previous = chan.context
        chan.update(e.chan)
        chan.application, chan.app_data = e.application, e.app_data
        if e.chan.context not in CTID_CONTEXTS:
            return
        call = self.calls[chan.linkedid]
        if not call.contact:
            self._adopt_contact(call, chan, now, out)
        if chan.uniqueid != call.contact:
            return
        if e.chan.context == dialplan.WAIT and (
            previous != dialplan.WAIT or call.state is not CallState.WAITING
        ):
            self._enter_wait(call, now, out)
        elif e.chan.context == dialplan.AFTER and previous != dialplan.AFTER:
            call.state = CallState.AFTER
            self._note(call, now, "after", application=e.application)
        elif e.chan.context in DEFLECT_CONTEXTS and call.state in (CallState.WAITING, CallState.IVR):
            self._deflect(call, DEFLECT_CONTEXTS[e.chan.context], now, out)

    def _deflect(self, call: Call, to: str, now: float, out: Out) -> None:
        """The contact left its queue without an agent, sent by routing (closed hours, overflow, max wait)."""
        _, _, reason = call.sent_to.partition(":")
        wait = now - call.arrived_at if call.arrived_at is not None else 0.0
        event = d.CallDeflected(now, call.linkedid, call.queue, to, reason, round(wait, 6))
        self._emit(call, event, out)
        call.sent_to = ""
        if not to.startswith("queue:"):
            call.state = CallState.DEFLECTED

    def _adopt_contact(self, call: Call, chan: Channel, now: float, out: Out) -> None:
        """The channel running ctid's contexts is the customer's: the call is a contact-center call."""
        if call.contact:
            return
        call.contact = chan.uniqueid
        call.contact_channel = chan.name
        if chan.context == dialplan.OUTBOUND or call.campaign:
            call.direction = d.Direction.OUTBOUND
            call.caller_num = dialed_number(chan.name)
            call.caller_name = chan.connected_name
            call.dnis = ""
        else:
            call.direction = d.Direction.INBOUND
            call.caller_num = chan.caller_num
            call.caller_name = chan.caller_name
            call.dnis = chan.exten if chan.context == dialplan.INBOUND else ""
        call.state = CallState.IVR
        arrived = d.CallArrived(
            now,
            call.linkedid,
            chan.uniqueid,
            chan.name,
            call.direction,
            call.caller_num,
            call.caller_name,
            call.dnis,
        )
        self._emit(call, arrived, out)

    def _resume_from_context(self, call: Call, chan: Channel, now: float, out: Out, arrival: float) -> None:
        """After a resync, where the contact is in the dialplan says what it is doing; `arrival` is when a
        queue stay begun out of sight began, as far as ctid can tell."""
        if chan.context == dialplan.WAIT and call.state is not CallState.WAITING:
            self._enter_wait(call, now, out, arrival)
        elif chan.context == dialplan.CONNECT and call.state in (CallState.IVR, CallState.WAITING):
            if call.state is CallState.IVR:  # it reached a queue (and an agent) out of sight
                self._enter_wait(call, now, out, arrival)
            if call.arrived_at is None:
                call.arrived_at = call.waiting_since = now
            call.state = CallState.RINGING  # dialing an agent; the bridge says when it is answered
        elif chan.context == dialplan.AFTER:
            call.state = CallState.AFTER

    def _enter_wait(self, call: Call, now: float, out: Out, arrival: float | None = None) -> None:
        if call.agent and call.state in (CallState.CONNECTED, CallState.HELD):
            self._close_hold(call, now)
            self._agent_left(call, now, out)  # moved back to a queue straight from a conversation
        requeued = call.state is CallState.RINGING or (
            call.state is CallState.WAITING and call.arrived_at is not None
        )
        if not requeued or call.arrived_at is None:
            call.arrived_at = now if arrival is None else arrival
        if call.waiting_since is None or not requeued:
            call.waiting_since = call.arrived_at
        call.state = CallState.WAITING
        call.agent = ""
        call.agent_channel = ""
        call.ring_started_at = None
        self._choose_queue(call, now, out)
        self._emit(
            call, d.CallWaiting(now, call.linkedid, call.contact, call.queue, call.arrived_at, requeued), out
        )

    def _resolve_queue(self, call: Call, asked: str) -> str:
        if self.queue_resolver is None:
            return asked or DEFAULT_QUEUE
        if asked and call.direction is d.Direction.OUTBOUND:
            return asked  # a dialer call's queue (outbound-<campaign>) is the dialer's, not routing.yaml's
        return self.queue_resolver(call.dnis, asked)

    def _choose_queue(self, call: Call, now: float, out: Out) -> None:
        """The queue a contact entering ctid-wait waits in: CTID_QUEUE if routing knows it, else the one its
        dialled number maps to, else the default queue (the IVR step failed, or ctid was away)."""
        chosen = self._resolve_queue(call, call.queue)
        if chosen != call.queue:
            self._assign_queue(call, chosen, call.queue, now, out)

    def _assign_queue(self, call: Call, queue: str, asked: str, now: float, out: Out) -> None:
        call.queue = queue
        if self.queue_resolver is None:
            return  # no routing (replays): nobody sets CTID_QUEUE, the contact keeps the placeholder queue
        assigned = d.QueueAssigned(now, call.linkedid, call.contact, call.contact_channel, queue, asked)
        self._emit(call, assigned, out)

    def _on_varset(self, e: ev.VarSet, now: float, out: Out) -> None:
        if e.variable not in TRACKED_VARIABLES:
            return
        chan = self._chan(e.chan, now, out)
        if chan is None:
            return
        call = self.calls[chan.linkedid]
        # Originate sets variables on both Local halves; only the contact's (or its pair's) count
        if (
            call.contact
            and chan.uniqueid != call.contact
            and (local_base(chan.name) is None or local_base(chan.name) != local_base(call.contact_channel))
        ):
            return
        self._set_variable(call, chan, e.variable, e.value, now, out)

    def _set_variable(self, call: Call, chan: Channel, name: str, value: str, now: float, out: Out) -> None:
        current = {
            dialplan.QUEUE_VAR: call.queue,
            dialplan.CUSTOMER_VAR: call.customer,
            dialplan.TIER_VAR: call.tier,
            dialplan.CAMPAIGN_VAR: call.campaign,
            dialplan.CONTACT_VAR: call.contact_id,
            "AMDSTATUS": call.amd,
            dialplan.SENT_TO_VAR: call.sent_to,
            dialplan.CALLBACK_VAR: call.callback,
        }[name]
        if current == value:
            return
        if name == dialplan.QUEUE_VAR:
            if call.state is CallState.WAITING and call.queue and call.queue != value:
                if self._resolve_queue(call, value) != value:
                    # a queue routing.yaml does not have: the contact keeps its place, CTID_QUEUE is put back
                    self._emit(call, d.CallVariable(now, call.linkedid, name, value), out)
                    self._assign_queue(call, call.queue, value, now, out)
                    return
                # moved while waiting: this contact is deflected, a new one waits in the new queue
                self._deflect(call, f"queue:{value}", now, out)
                call.queue = value
                self._emit(call, d.CallVariable(now, call.linkedid, name, value), out)
                call.arrived_at = call.waiting_since = now
                self._emit(call, d.CallWaiting(now, call.linkedid, call.contact, value, now, False), out)
                return
            call.queue = value
        elif name == dialplan.SENT_TO_VAR:
            call.sent_to = value
        elif name == dialplan.CALLBACK_VAR:
            call.callback = value
        elif name == dialplan.CUSTOMER_VAR:
            call.customer = value
        elif name == dialplan.TIER_VAR:
            call.tier = value
        elif name == dialplan.CAMPAIGN_VAR:
            call.campaign = value
            call.direction = d.Direction.OUTBOUND
        elif name == "AMDSTATUS":
            call.amd = value
        else:
            call.contact_id = value
        self._emit(call, d.CallVariable(now, call.linkedid, name, value), out)

    # ---- dialing agents ---------------------------------------------------------------------------

    def _on_dial_begin(self, e: ev.DialBegin, now: float, out: Out) -> None:
        dest = self._chan(e.dest, now, out)
        if dest is None:
            return
        if e.caller is None:  # an Originate: the callee is being dialed
            dialed = self.calls[dest.linkedid]
            if dialed.state is CallState.IVR and not dialed.contact:
                dialed.state = CallState.DIALING
                dialed.dialed = dest.device
            return
        caller = self._chan(e.caller, now, out)
        if caller is None:
            return
        call = self.calls.get(caller.linkedid)
        if call is None or caller.uniqueid != call.contact or caller.context != dialplan.CONNECT:
            return
        call.state = CallState.RINGING
        call.agent = dest.device
        call.agent_channel = dest.name
        call.ring_started_at = now
        agent = self._agent(dest.device, now)
        agent.call = call.linkedid
        agent.since = now
        self._emit(
            call, d.AgentRinging(now, call.linkedid, call.contact, dest.device, dest.name, call.queue), out
        )

    def _on_dial_state(self, e: ev.DialState, now: float, out: Out) -> None:
        dest = self._chan(e.dest, now, out)
        if dest is not None:
            dest.update(e.dest)

    def _on_dial_end(self, e: ev.DialEnd, now: float, out: Out) -> None:
        dest = self._chan(e.dest, now, out)
        if dest is None:
            return
        if e.caller is None:  # an Originate's callee: busy and unanswered are known here first
            dialed = self.calls.get(dest.linkedid)
            if dialed is not None and not dialed.contact and not dialed.disposition:
                dialed.disposition = DIAL_STATUS_DISPOSITIONS.get(e.status, "")
            return
        caller = self.channels.get(e.caller.uniqueid)
        call = self.calls.get(caller.linkedid) if caller else None
        if call is None or caller is None or caller.uniqueid != call.contact:
            return
        if e.status == "ANSWER" or e.status == "CANCEL":
            return  # answered: the bridge tells; cancelled: the caller hung up (an abandon, seen at Hangup)
        agent = self._agent(dest.device, now)
        if agent.call == call.linkedid:
            agent.call = ""
            agent.since = now
        agent.ring_no_answer += 1
        ring_s = now - call.ring_started_at if call.ring_started_at is not None else 0.0
        self._emit(call, d.RingNoAnswer(now, call.linkedid, dest.device, e.status, round(ring_s, 6)), out)
        call.agent = ""
        call.agent_channel = ""
        call.ring_started_at = None

    # ---- bridges: who talks to whom ---------------------------------------------------------------

    def _on_local_bridge(self, e: ev.LocalBridge, now: float, out: Out) -> None:
        self._chan(e.one, now, out)
        self._chan(e.two, now, out)

    def _on_bridge_create(self, e: ev.BridgeCreate, now: float, out: Out) -> None:
        self.bridges.setdefault(e.bridge_id, set())

    def _on_bridge_enter(self, e: ev.BridgeEnter, now: float, out: Out) -> None:
        chan = self._chan(e.chan, now, out)
        if chan is None:
            return
        chan.bridge_id = e.bridge_id
        self.bridges.setdefault(e.bridge_id, set()).add(chan.uniqueid)
        self._bridges_changed(e.bridge_id, now, out)

    def _on_bridge_leave(self, e: ev.BridgeLeave, now: float, out: Out) -> None:
        chan = self.channels.get(e.chan.uniqueid)
        call = self.calls.get(chan.linkedid) if chan is not None else None
        if (
            chan is not None
            and call is not None
            and call.state is CallState.CONNECTED
            and not call.ended_by
            and e.bridge_id in self._contact_bridges(call)
        ):
            # the first side to leave the contact's bridge is the side that hung up
            if chan.uniqueid == call.contact or chan.name == self._contact_peer_name(call):
                call.ended_by = "caller"
            elif chan.name == call.agent_channel:
                call.ended_by = "agent"
        members = self.bridges.get(e.bridge_id)
        if members is not None:
            members.discard(e.chan.uniqueid)
        if chan is not None and chan.bridge_id == e.bridge_id:
            chan.bridge_id = ""
        self._bridges_changed(e.bridge_id, now, out)

    def _on_bridge_merge(self, e: ev.BridgeMerge, now: float, out: Out) -> None:
        """Asterisk reports every channel a merge moves (BridgeLeave, then BridgeEnter unless the channel
        is kicked, as the transferer is when it is still in the consult bridge): the merge moves nothing."""
        self.bridges.setdefault(e.to_bridge, set())

    def _on_bridge_destroy(self, e: ev.BridgeDestroy, now: float, out: Out) -> None:
        self.bridges.pop(e.bridge_id, None)

    def _bridges_changed(self, bridge_id: str, now: float, out: Out) -> None:
        linkedids = {self.channels[u].linkedid for u in self.bridges.get(bridge_id, ()) if u in self.channels}
        for linkedid in linkedids:
            call = self.calls.get(linkedid)
            if call is not None and call.contact:
                self._refresh_contact_state(call, now, out)

    def _contact_bridges(self, call: Call) -> set[str]:
        contact = self.channels.get(call.contact)
        if contact is None:
            return set()
        peer = self._peer_of(contact)
        return {c.bridge_id for c in (contact, peer) if c is not None and c.bridge_id}

    def _peer_of(self, chan: Channel) -> Channel | None:
        """The other half of a Local channel pair."""
        base = local_base(chan.name)
        if base is None:
            return None
        other = base + (";2" if chan.name.endswith(";1") else ";1")
        uid = self.by_name.get(other)
        return self.channels.get(uid) if uid else None

    def _talking_to(self, call: Call) -> Channel | None:
        """The agent-side channel bridged with the contact, looking through the contact's own Local pair."""
        contact = self.channels.get(call.contact)
        if contact is None:
            return None
        sides = [contact]
        peer = self._peer_of(contact)
        if peer is not None:
            sides.append(peer)
        own = {c.uniqueid for c in sides}
        for side in sides:
            for uid in sorted(self.bridges.get(side.bridge_id, ())) if side.bridge_id else ():
                if uid not in own and uid in self.channels:
                    return self.channels[uid]
        return None

    def _refresh_contact_state(self, call: Call, now: float, out: Out) -> None:
        other = self._talking_to(call)
        if other is None:
            # on hold the agent may be consulting someone else: still the call's agent until they hang
            # up or the transfer completes
            if call.state is CallState.CONNECTED and call.agent:
                self._agent_left(call, now, out)
            return
        device = other.device
        if call.state in (CallState.CONNECTED, CallState.HELD) and call.agent == device:
            return
        if call.agent and call.agent != device and call.state in (CallState.CONNECTED, CallState.HELD):
            # the contact is bridged with another agent without passing through a queue: attended transfer
            previous = call.agent
            self._agent_left(call, now, out)
            call.transfers += 1
            self._emit(
                call,
                d.CallTransferred(now, call.linkedid, d.TransferKind.ATTENDED, previous, device, ""),
                out,
            )
        elif call.state is CallState.AFTER and call.agents and not call.agent and call.agents[-1] != device:
            call.transfers += 1
            self._emit(
                call,
                d.CallTransferred(now, call.linkedid, d.TransferKind.ATTENDED, call.agents[-1], device, ""),
                out,
            )
        self._close_hold(call, now)
        wait = now - call.arrived_at if call.arrived_at is not None else 0.0
        first_answer = call.answered_at is None
        call.state = CallState.CONNECTED
        call.agent = device
        call.agent_channel = other.name
        call.ended_by = ""  # a transferring agent's hang-up did not end the call
        if first_answer:
            call.answered_at = now
        call.agents.append(device)
        agent = self._agent(device, now)
        agent.call = call.linkedid
        agent.since = now
        queue = call.queue
        self._emit(
            call,
            d.CallConnected(now, call.linkedid, device, other.name, queue, round(max(wait, 0.0), 6)),
            out,
        )
        call.waiting_since = None

    def _agent_left(self, call: Call, now: float, out: Out) -> None:
        agent = self.agents.get(call.agent)
        if agent is not None and agent.call == call.linkedid:
            agent.call = ""
            agent.since = now
            agent.handled += 1
        if call.agent:
            self._emit(call, d.AgentLeftCall(now, call.linkedid, call.agent), out)
        call.agent = ""
        call.agent_channel = ""
        call.state = CallState.AFTER

    # ---- hold and transfers ----------------------------------------------------------------------

    def _on_hold(self, e: ev.Hold, now: float, out: Out) -> None:
        chan = self._chan(e.chan, now, out)
        call = self.calls.get(chan.linkedid) if chan is not None else None
        if chan is None or call is None or call.state is not CallState.CONNECTED:
            return
        call.state = CallState.HELD
        call.held_since = now
        self._emit(call, d.CallHeld(now, call.linkedid, chan.name), out)

    def _on_unhold(self, e: ev.Unhold, now: float, out: Out) -> None:
        chan = self._chan(e.chan, now, out)
        call = self.calls.get(chan.linkedid) if chan is not None else None
        if chan is None or call is None or call.held_since is None:
            return
        held = now - call.held_since
        call.hold_s += held
        call.held_since = None
        if call.state is CallState.HELD:
            call.state = CallState.CONNECTED if call.agent else CallState.AFTER
        self._emit(call, d.CallResumed(now, call.linkedid, chan.name, round(held, 6)), out)

    def _close_hold(self, call: Call, now: float) -> None:
        if call.held_since is not None:
            call.hold_s += now - call.held_since
            call.held_since = None

    def _on_blind_transfer(self, e: ev.BlindTransfer, now: float, out: Out) -> None:
        if not e.success or e.transferee is None:
            return
        call = self.calls.get(e.transferee.linkedid)
        if call is None:
            return
        from_agent = device_of(e.transferer.channel) if e.transferer else ""
        self._close_hold(call, now)
        if call.agent:
            self._agent_left(call, now, out)
        call.transfers += 1
        to_queue = e.extension if e.context == dialplan.TRANSFER else ""
        to_agent = "" if to_queue else f"{e.extension}@{e.context}"
        contact = self.channels.get(call.contact)
        already_waiting = (
            call.state is CallState.WAITING and contact is not None and contact.context == dialplan.WAIT
        )
        if to_queue and not already_waiting:  # a new contact in that queue: arrival now (METRICS.md)
            # (Asterisk sometimes reports the transfer after the caller already reached ctid-wait)
            call.arrived_at = None
            call.state = CallState.AFTER
        self._emit(
            call,
            d.CallTransferred(now, call.linkedid, d.TransferKind.BLIND, from_agent, to_agent, to_queue),
            out,
        )

    def _on_attended_transfer(self, e: ev.AttendedTransfer, now: float, out: Out) -> None:
        call = self.calls.get(e.transferee.linkedid) if e.transferee else None
        if call is not None:
            self._note(call, now, "attended_transfer_event", success=e.success, dest_type=e.dest_type)

    # ---- originate, devices, hangups --------------------------------------------------------------

    def _on_originate_response(self, e: ev.OriginateResponse, now: float, out: Out) -> None:
        if e.success:
            return
        text = d.ORIGINATE_REASONS.get(e.reason, "failed")
        # the call that dialed this device: still up, or ended and waiting for this answer
        # (the answer may even come before the DialBegin: match the channels' device)
        target = next(
            (
                call
                for chan in self.channels.values()
                if chan.device == e.channel
                and (call := self.calls.get(chan.linkedid)) is not None
                and not call.contact
                and not call.originate_failed
            ),
            None,
        )
        deferred = target is None
        if target is None:
            target = next((c for c in self._unresolved if c.dialed == e.channel), None)
        if target is None:  # answered before its channels were even created: matched when the call ends
            self._early_failures.append((now, e))
            while self._early_failures and now - self._early_failures[0][0] > ORIGINATE_GRACE_S:
                _, stale = self._early_failures.popleft()
                reason = d.ORIGINATE_REASONS.get(stale.reason, "failed")
                out.append(
                    d.OriginateFailed(now, "", stale.action_id or "", stale.channel, stale.reason, reason)
                )
            return
        event = d.OriginateFailed(now, target.linkedid, e.action_id or "", e.channel, e.reason, text)
        target.originate_failed = True
        target.disposition = text
        target.direction = d.Direction.OUTBOUND
        target.caller_num = target.caller_num or dialed_number(e.channel)
        self._emit(target, event, out)
        if deferred:
            self._unresolved.remove(target)
            self._finish_dialed(target, out)

    def _on_device_state(self, e: ev.DeviceStateChange, now: float, out: Out) -> None:
        if self.devices.get(e.device) == e.state:
            return
        self.devices[e.device] = e.state
        agent = self.agents.get(e.device)
        if agent is not None:
            agent.device_state = e.state
        out.append(d.AgentDeviceChanged(now, "", e.device, e.state))

    def _contact_peer_name(self, call: Call) -> str:
        base = local_base(call.contact_channel)
        if base is None:
            return ""
        return base + (";2" if call.contact_channel.endswith(";1") else ";1")

    def _on_hangup(self, e: ev.Hangup, now: float, out: Out) -> None:
        chan = self.channels.get(e.chan.uniqueid)
        if chan is None:
            return
        self._remove_channel(chan, now, out, e.cause, lost=False)

    def _remove_channel(self, chan: Channel, now: float, out: Out, cause: int, lost: bool) -> None:
        del self.channels[chan.uniqueid]
        if len(self._gone) == self._gone.maxlen:
            self._gone_set.discard(self._gone[0])
        self._gone.append(chan.uniqueid)
        self._gone_set.add(chan.uniqueid)
        if self.by_name.get(chan.name) == chan.uniqueid:
            del self.by_name[chan.name]
        if chan.bridge_id:
            members = self.bridges.get(chan.bridge_id)
            if members is not None:
                members.discard(chan.uniqueid)
        call = self.calls.get(chan.linkedid)
        if call is None:
            return
        call.channels.discard(chan.uniqueid)
        if chan.uniqueid == call.contact:
            self._contact_gone(call, chan, now, out, cause, lost)
        elif (
            call.agent
            and chan.name == call.agent_channel
            and call.state in (CallState.CONNECTED, CallState.HELD)
        ):
            self._close_hold(call, now)
            self._agent_left(call, now, out)
        if not call.channels:
            self._end_call(call, now, out, cause, lost)

    def _contact_gone(self, call: Call, chan: Channel, now: float, out: Out, cause: int, lost: bool) -> None:
        call.cause = cause
        self._close_hold(call, now)
        if call.state in (CallState.WAITING, CallState.RINGING, CallState.IVR) and call.amd == "MACHINE":
            call.disposition = "machine"  # a dialer call to an answering machine: no contact was offered
        elif call.state in (CallState.WAITING, CallState.RINGING):
            if call.agent:
                agent = self.agents.get(call.agent)
                if agent is not None and agent.call == call.linkedid:
                    agent.call = ""
                    agent.since = now
            wait = now - call.arrived_at if call.arrived_at is not None else 0.0
            if call.sent_to and not lost:  # routing hung it up (closed_action hangup)
                call.ended_by = "system"
                self._deflect(call, "hangup", now, out)
                call.disposition = "deflected"
                call.state = CallState.ENDED
                return
            if not lost:
                call.ended_by = call.ended_by or "caller"
                self._emit(
                    call,
                    d.CallAbandoned(
                        now, call.linkedid, call.queue, round(wait, 6), call.state is CallState.RINGING
                    ),
                    out,
                )
            call.disposition = "lost" if lost else "abandoned"
        elif call.state in (CallState.CONNECTED, CallState.HELD):
            if not call.ended_by:
                call.ended_by = "caller"
            self._agent_left(call, now, out)
            call.disposition = "answered"
        elif call.state is CallState.AFTER:
            call.disposition = "answered" if call.answered_at is not None else "abandoned"
        elif call.state is CallState.IVR:
            call.disposition = "ivr"
        elif call.state is CallState.DEFLECTED:
            call.disposition = "deflected"
        elif call.state is CallState.DIALING:
            call.disposition = call.disposition or "unanswered"
        if lost:
            call.disposition = "lost"
        call.state = CallState.ENDED

    def _end_call(self, call: Call, now: float, out: Out, cause: int, lost: bool) -> None:
        del self.calls[call.linkedid]
        call.state = CallState.ENDED
        call.ended_at = now
        call.cause = call.cause or cause
        if call.dialed and not call.contact and not call.originate_failed and not lost:
            early = next((item for item in self._early_failures if item[1].channel == call.dialed), None)
            self._unresolved.append(call)
            if early is None:
                return  # its OriginateResponse is still to come
            self._early_failures.remove(early)
            self._on_originate_response(early[1], now, out)
            return
        if not call.disposition:
            call.disposition = (
                "lost" if lost else ("failed" if call.direction is d.Direction.OUTBOUND else "")
            )
        if call.contact or call.direction is not d.Direction.INTERNAL:
            self._emit(
                call,
                d.CallEnded(now, call.linkedid, call.cause or cause, call.ended_by, call.disposition),
                out,
            )
        self.ended.append(call)

    def _finish_dialed(self, call: Call, out: Out) -> None:
        """End a dialer call that never reached ctid-outbound, once its Originate result is known."""
        call.direction = d.Direction.OUTBOUND
        call.disposition = call.disposition or "failed"
        at = call.ended_at or 0.0
        self._emit(call, d.CallEnded(at, call.linkedid, call.cause, call.ended_by, call.disposition), out)
        self.ended.append(call)

    # ---- helpers -----------------------------------------------------------------------------------

    def _agent(self, device: str, now: float) -> Phone:
        agent = self.agents.get(device)
        if agent is None:
            agent = Phone(device=device, device_state=self.devices.get(device, "UNKNOWN"), since=now)
            self.agents[device] = agent
        return agent

    def _emit(self, call: Call, event: d.DomainEvent, out: Out) -> None:
        if self._resyncing and isinstance(event, ADOPTABLE):
            event = replace(event, adopted=True)
        out.append(event)
        entry = event.to_dict()
        entry.pop("linkedid", None)
        call.timeline.append(entry)

    def _note(self, call: Call, now: float, kind: str, **detail: Any) -> None:
        call.timeline.append({"kind": kind, "at": now, **detail})

    def _ignore(self, e: ev.AmiEvent, now: float, out: Out) -> None:
        return None
