"""The sans-I/O simulated Asterisk: channels, bridges and the dialplan in virtual time, AMI events out."""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ctid.ami.message import AmiMessage
from pbxsim import apps
from pbxsim.channels import CAUSE_TEXT, UNKNOWN, Bridge, Channel, ChannelState
from pbxsim.dialplan import Dialplan, substitute
from pbxsim.site import Endpoint, reference_site

if TYPE_CHECKING:
    from pbxsim.agi import AgiSession

DEFAULT_START = 1_795_392_000.0  # 2026-11-23 00:00 UTC, as ctid.clock.VirtualClock
ASTERISK_VERSION = "GIT-master-f0c1c1a7b7"  # the build the reference transcripts were captured from
EXTENSION_STATUS = {
    "NOT_INUSE": (0, "Idle"),
    "UNKNOWN": (0, "Idle"),
    "INUSE": (1, "InUse"),
    "BUSY": (2, "Busy"),
    "UNAVAILABLE": (4, "Unavailable"),
    "INVALID": (4, "Unavailable"),
    "RINGING": (8, "Ringing"),
    "RINGINUSE": (9, "InUse&Ringing"),
    "ONHOLD": (16, "Hold"),
}
DEVICE_STATES = frozenset(EXTENSION_STATUS)


class Timer:
    """A scheduled callback; cancel() makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class BridgeOwner(Protocol):
    """Whoever made a bridge (a Dial, an attended transfer) decides what happens when a member leaves."""

    def member_left(self, channel: Channel) -> None: ...


@dataclass(frozen=True, slots=True)
class PhonePlan:
    """How a phone treats one call: it rings `answer_after` s (None: forever), may hold, may hang up."""

    answer_after: float | None
    talk_time: float | None = None
    hold_at: float | None = None
    hold_for: float = 0.0


@dataclass(frozen=True, slots=True)
class CalleeFate:
    """What a dialed outbound number (Local/NUMBER@sim-callees) does: person, machine, busy or noanswer."""

    fate: str
    ring: float = 3.0
    talk: float = 30.0


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A read-only view of one live channel, for assertions and dashboards."""

    name: str
    uniqueid: str
    linkedid: str
    state: str
    caller_num: str
    caller_name: str
    context: str
    exten: str
    priority: int
    application: str
    data: str
    bridge: str
    variables: tuple[tuple[str, str], ...]


AgiPeer = Callable[["AgiSession"], None]
PhonePolicy = Callable[[Endpoint, Channel], PhonePlan]
CalleePolicy = Callable[[str], CalleeFate]
ConnectHook = Callable[[Channel, Channel], None]


class World:
    """A whole simulated PBX. Drive it with handle_action() and advance(); it never reads the wall clock.

    FastAGI steps become AgiSession objects: with an `agi_peer` they run in-process at once, otherwise they
    wait in `agi_requests` for an I/O layer, and virtual time stands still until they are closed.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        start: float = DEFAULT_START,
        endpoints: Iterable[Endpoint] | None = None,
        dialplan: Dialplan | None = None,
        agi_peer: AgiPeer | None = None,
    ) -> None:
        self.now = start
        self.started = start
        self.seed = seed
        self.dialplan = dialplan or Dialplan()
        self.globals = dict(self.dialplan.globals)
        self.agi_peer = agi_peer
        self.endpoints = {e.name: e for e in (reference_site() if endpoints is None else endpoints)}
        self.registered = {e.name for e in self.endpoints.values() if e.registered}
        self.ids = random.Random(f"pbxsim-ids-{seed}")
        self.channels: dict[str, Channel] = {}
        self.device_states: dict[str, str] = {}
        self.extension_states: dict[tuple[str, str], str] = {}
        self.agi_requests: list[AgiSession] = []
        self.agi_open: list[AgiSession] = []
        self.phone_policy: PhonePolicy | None = None
        self.callee_policy: CalleePolicy | None = None
        self.connect_hooks: list[ConnectHook] = []
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._outbox: list[AmiMessage] = []
        self._uid = itertools.count()
        self._tech_counters: dict[str, itertools.count[int]] = {}
        for e in self.endpoints.values():
            self.device_states[e.device] = "NOT_INUSE" if e.registered else "UNAVAILABLE"
        for hint in self.dialplan.hints:
            self.extension_states[(hint.exten, hint.context)] = self._hint_state(hint.device)

    # ---- time -------------------------------------------------------------------------------------
    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def soon(self, callback: Callable[[], None]) -> Timer:
        """Run `callback` at the current instant, after whatever is already due now."""
        return self.schedule(0.0, callback)

    def next_timer_at(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    @property
    def frozen(self) -> bool:
        """True while a FastAGI session is open: nothing else happens until it ends."""
        return any(s.blocking for s in self.agi_open)

    def advance(self, to: float) -> list[AmiMessage]:
        """Run every timer due up to `to` (stopping early while FastAGI is open); return the events."""
        while not self.frozen:
            when = self.next_timer_at()
            if when is None or when > to:
                break
            _, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            timer.callback()
        if not self.frozen:
            self.now = max(self.now, to)
        return self.take_events()

    run_until = advance

    def step(self, seconds: float) -> list[AmiMessage]:
        return self.advance(self.now + seconds)

    def settle(self) -> list[AmiMessage]:
        """Run what is due at the current instant."""
        return self.advance(self.now)

    # ---- events -----------------------------------------------------------------------------------
    def timestamp(self) -> str:
        return f"{self.now:.6f}"

    def emit(self, event: str, fields: Iterable[tuple[str, str]], privilege: str = "call,all") -> None:
        head = [("Event", event), ("Privilege", privilege), ("Timestamp", self.timestamp())]
        self._outbox.append(AmiMessage([*head, *fields]))

    def emit_channel(
        self, event: str, ch: Channel, extra: Sequence[tuple[str, str]] = (), privilege: str = "call,all"
    ) -> None:
        self.emit(event, [*ch.fields(), *extra], privilege)

    def take_events(self) -> list[AmiMessage]:
        out, self._outbox = self._outbox, []
        return out

    def set_var(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.emit_channel("VarSet", ch, [("Variable", name), ("Value", value)], "dialplan,all")

    def set_state(self, ch: Channel, state: ChannelState) -> None:
        if ch.state == state:
            return
        ch.state = state
        if state == ChannelState.UP and ch.answered is None:
            ch.answered = self.now
        self.emit_channel("Newstate", ch)
        self.update_device(ch.device)

    def set_callerid(self, ch: Channel, num: str, name: str) -> None:
        ch.cid_num, ch.cid_name = num, name
        self.announce_callerid(ch)

    def announce_callerid(self, ch: Channel) -> None:
        self.emit_channel("NewCallerid", ch, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])

    def announce_connected(self, ch: Channel) -> None:
        self.emit_channel("NewConnectedLine", ch)

    def set_connected(self, ch: Channel, num: str, name: str, *, propagate: bool = False) -> None:
        """A connected-line update; on a Local channel it becomes the caller id of the other half."""
        ch.conn_num, ch.conn_name = num, name
        self.emit_channel("NewConnectedLine", ch)
        other = ch.partner
        if propagate and other is not None and other.alive and (other.cid_num, other.cid_name) != (num, name):
            # queued as a frame to the other half, which (busy in Echo or Wait) applies it when it hangs up
            other.pending_cid = (num, name)

    # ---- identities -------------------------------------------------------------------------------
    def new_uniqueid(self) -> str:
        return f"{int(self.now)}.{next(self._uid)}"

    def _counter(self, tech: str) -> int:
        return next(self._tech_counters.setdefault(tech, itertools.count()))

    def new_bridge_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def _register(self, ch: Channel) -> Channel:
        self.channels[ch.name] = ch
        self.emit_channel("Newchannel", ch)
        return ch

    def new_local_pair(
        self, exten: str, context: str, linkedid: str | None = None, uniqueids: tuple[str, str] = ("", "")
    ) -> tuple[Channel, Channel]:
        """Both halves of Local/EXTEN@CONTEXT, announced with Newchannel; ;2 will run the dialplan.

        `uniqueids` are an Originate's ChannelId and OtherChannelId, when it chose them."""
        base = f"Local/{exten}@{context}-{self._counter('Local'):08x}"
        uid1 = uniqueids[0] or self.new_uniqueid()
        one = Channel(
            base + ";1", uid1, linkedid or uid1, "Local", self.now, context=context, exten=exten, half=1
        )
        two = Channel(
            base + ";2",
            uniqueids[1] or self.new_uniqueid(),
            one.linkedid,
            "Local",
            self.now,
            ChannelState.RING,
            context=context,
            exten=exten,
            half=2,
        )
        one.partner, two.partner = two, one
        self._register(one)
        self._register(two)
        if context == "sim-callees" and exten.isdigit():
            fate = self.callee_policy(exten) if self.callee_policy else CalleeFate("person")
            two.variables.update(SIM_FATE=fate.fate, SIM_RING=f"{fate.ring:g}", SIM_TALK=f"{fate.talk:g}")
        return one, two

    def local_bridge(self, one: Channel, two: Channel) -> None:
        self.emit(
            "LocalBridge",
            [
                *one.fields("LocalOne"),
                *two.fields("LocalTwo"),
                ("Context", two.context),
                ("Exten", two.exten),
                ("LocalOptimization", "Yes"),
            ],
        )

    def new_pjsip(
        self,
        endpoint: Endpoint,
        *,
        state: ChannelState,
        context: str,
        exten: str,
        linkedid: str | None = None,
        cid: tuple[str, str] | None = None,
        inbound: bool = False,
        uniqueid: str = "",
    ) -> Channel:
        uid = uniqueid or self.new_uniqueid()
        ch = Channel(
            f"PJSIP/{endpoint.name}-{self._counter('PJSIP'):08x}",
            uid,
            linkedid or uid,
            "PJSIP",
            self.now,
            state,
            context=context,
            exten=exten,
        )
        ch.cid_num, ch.cid_name = cid or (endpoint.callerid_num, endpoint.callerid_name)
        ch.endpoint = endpoint
        bits = self.ids.getrandbits(128)
        ch.callid = f"{bits:032x}@127.0.0.1:5060" if inbound else str(uuid.UUID(int=bits, version=4))
        return self._register(ch)

    # ---- devices ----------------------------------------------------------------------------------
    def _device_state_of(self, device: str) -> str:
        chans = [c for c in self.channels.values() if c.device == device and c.alive]
        if device.startswith("PJSIP/"):
            name = device.split("/", 1)[1]
            if name not in self.registered and not chans:
                return "UNAVAILABLE"
            if not chans:
                return "NOT_INUSE"
            if any(c.state == ChannelState.RINGING for c in chans) and not any(
                c.state == ChannelState.UP for c in chans
            ):
                return "RINGING"
            return "INUSE"
        return "INUSE" if chans else "NOT_INUSE"

    def update_device(self, device: str) -> None:
        state = self._device_state_of(device)
        if self.device_states.get(device) == state:
            return
        self.set_device_state(device, state)

    def set_device_state(self, device: str, state: str) -> None:
        self.device_states[device] = state
        for hint in self.dialplan.hints:
            if device in hint.device.split("&"):
                key = (hint.exten, hint.context)
                new = self._hint_state(hint.device)
                if self.extension_states.get(key) != new:
                    self.extension_states[key] = new
                    status, text = EXTENSION_STATUS.get(new, (4, "Unavailable"))
                    self.emit(
                        "ExtensionStatus",
                        [
                            ("Exten", hint.exten),
                            ("Context", hint.context),
                            ("Hint", hint.device),
                            ("Status", str(status)),
                            ("StatusText", text),
                        ],
                    )
        self.emit("DeviceStateChange", [("Device", device), ("State", state)])

    def _hint_state(self, devices: str) -> str:
        states = [
            self.device_states.get(d, "NOT_INUSE" if d.startswith("Custom:") else "UNAVAILABLE")
            for d in devices.split("&")
        ]
        for wanted in ("INUSE", "RINGING", "BUSY", "ONHOLD", "NOT_INUSE"):
            if wanted in states:
                return wanted
        return states[0] if states else "UNAVAILABLE"

    def set_custom_state(self, name: str, state: str) -> None:
        self.set_device_state(f"Custom:{name}", state)

    def register(self, endpoint: str) -> None:
        """A SIP phone registers: the endpoint becomes reachable."""
        e = self.endpoints[endpoint]
        self.registered.add(endpoint)
        self.emit("PeerStatus", [("ChannelType", "PJSIP"), ("Peer", e.device), ("PeerStatus", "Reachable")])
        self.update_device(e.device)
        self.emit(
            "ContactStatus",
            [
                ("URI", f"sip:{endpoint}@127.0.0.1:5060"),
                ("ContactStatus", "NonQualified"),
                ("AOR", endpoint),
                ("EndpointName", endpoint),
                ("RoundtripUsec", "0"),
            ],
        )

    def unregister(self, endpoint: str) -> None:
        e = self.endpoints[endpoint]
        self.registered.discard(endpoint)
        self.update_device(e.device)
        self.emit("PeerStatus", [("ChannelType", "PJSIP"), ("Peer", e.device), ("PeerStatus", "Unreachable")])

    # ---- dialplan ---------------------------------------------------------------------------------
    def lookup(self, ch: Channel, name: str) -> str | None:
        if name in ch.variables:
            return ch.variables[name]
        builtin = {
            "EXTEN": ch.exten,
            "CONTEXT": ch.context,
            "PRIORITY": str(ch.priority),
            "UNIQUEID": ch.uniqueid,
            "CHANNEL": ch.name,
            "CHANNEL(name)": ch.name,
            "CHANNEL(uniqueid)": ch.uniqueid,
            "CHANNEL(linkedid)": ch.linkedid,
            "CHANNEL(state)": ch.state.desc,
            "CHANNEL(language)": "en",
            "CALLERID(num)": ch.cid_num if ch.cid_num != UNKNOWN else "",
            "CALLERID(name)": ch.cid_name if ch.cid_name != UNKNOWN else "",
            "CONNECTEDLINE(num)": ch.conn_num if ch.conn_num != UNKNOWN else "",
            "CONNECTEDLINE(name)": ch.conn_name if ch.conn_name != UNKNOWN else "",
            "HANGUPCAUSE": str(ch.hangup_cause),
        }
        if name in builtin:
            return builtin[name]
        if name == "CALLERID(all)":
            return f'"{self.lookup(ch, "CALLERID(name)")}" <{self.lookup(ch, "CALLERID(num)")}>'
        return self.globals.get(name)

    def expand(self, ch: Channel, text: str) -> str:
        return substitute(text, lambda name: self.lookup(ch, name))

    def start_pbx(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        """The channel starts running dialplan at a location (soon, not nested in the caller's step)."""
        ch.pbx = True
        ch.context, ch.exten, ch.priority = context, exten, priority
        self.wake(ch)

    def wake(self, ch: Channel) -> None:
        if ch.run_pending:
            return
        ch.run_pending = True
        self.soon(lambda: self._run(ch))

    def resume(self, ch: Channel) -> None:
        """An application finished: go on with the next priority."""
        ch.block = None
        ch.priority += 1
        self.wake(ch)

    def _run(self, ch: Channel) -> None:
        ch.run_pending = False
        for _ in range(1000):
            if not (ch.alive and ch.pbx and ch.block is None):
                return
            step = self.dialplan.step(ch.context, ch.exten, ch.priority)
            if step is None:
                self.hangup(ch, 16, soft=False)
                return
            data = self.expand(ch, step.data)
            ch.app, ch.appdata = step.app, data
            if ch.skip_newexten:
                ch.skip_newexten = False
            else:
                self.emit_channel(
                    "Newexten",
                    ch,
                    [("Extension", ch.exten), ("Application", step.app), ("AppData", data)],
                    "dialplan,all",
                )
            flow = apps.run(self, ch, step.app, data)
            if flow is apps.Flow.NEXT:
                ch.priority += 1
            elif flow is not apps.Flow.JUMP:
                return
        self.hangup(ch, 16)  # a dialplan loop

    def goto(self, ch: Channel, target: str) -> bool:
        """Goto([[context,]exten,]priority|label); False when the target does not exist."""
        parts = [p.strip() for p in target.split(",")]
        context, exten = ch.context, ch.exten
        if len(parts) == 3:
            context, exten, prio_text = parts
        elif len(parts) == 2:
            exten, prio_text = parts
        else:
            prio_text = parts[0]
        ext = self.dialplan.find(context, exten)
        if ext is None:
            return False
        prio = int(prio_text) if prio_text.isdigit() else ext.label_priority(prio_text)
        if prio is None or prio not in ext.steps:
            return False
        ch.context, ch.exten, ch.priority = context, exten, prio
        return True

    def redirect(self, targets: Sequence[tuple[Channel, str, str, int]]) -> None:
        """AMI Redirect of a channel (and its ExtraChannel); bridged ones announce their new place first."""
        for ch, context, exten, priority in targets:
            if ch.bridge is not None:
                self.announce_goto(ch, context, exten, priority)
        # which of two redirected channels leaves their bridge first is a race in Asterisk; the capture
        # kept in tests/pbxsim/captures/dual-redirect.ami.txt had the extra channel first
        for ch, context, exten, priority in reversed(targets):
            if ch.alive:
                self.async_goto(ch, context, exten, priority)

    def announce_goto(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        """A bridged channel is sent elsewhere: Newexten shows the new place with the application it still
        runs, and the first step there will not be announced again."""
        self.clear_bridgepeer(ch)
        ch.context, ch.exten, ch.priority = context, exten, priority
        self.emit_channel(
            "Newexten",
            ch,
            [("Extension", exten), ("Application", ch.app), ("AppData", ch.appdata)],
            "dialplan,all",
        )
        ch.skip_newexten = True

    def async_goto(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        """AMI Redirect or a transfer: the channel leaves what it is doing and runs the new location."""
        if ch.block is not None and ch.block.redirect(context, exten, priority):
            return
        if ch.bridge is not None and not ch.pbx:
            if not ch.skip_newexten:
                self.announce_goto(ch, context, exten, priority)
            bridge = ch.bridge
            owner = bridge.owner
            self.bridge_leave(ch)
            if owner is not None:
                owner.member_left(ch)
            ch.leg = None
            self.start_pbx(ch, context, exten, priority)
            return
        block, ch.block = ch.block, None
        if block is not None:
            block.stop("redirect")
        ch.leg = None
        self.start_pbx(ch, context, exten, priority)

    # ---- bridges ----------------------------------------------------------------------------------
    def bridge_create(self, owner: BridgeOwner | None) -> Bridge:
        bridge = Bridge(self.new_bridge_id(), owner=owner)
        self.emit("BridgeCreate", bridge.fields())
        return bridge

    def bridge_enter(self, bridge: Bridge, ch: Channel) -> None:
        bridge.channels.append(ch)
        ch.bridge = bridge
        self.emit("BridgeEnter", [*bridge.fields(), *ch.fields()])

    def bridge_leave(self, ch: Channel) -> None:
        bridge = ch.bridge
        if bridge is None:
            return
        bridge.channels.remove(ch)
        ch.bridge = None
        self.emit("BridgeLeave", [*bridge.fields(), *ch.fields()])

    def bridge_destroy(self, bridge: Bridge) -> None:
        self.emit("BridgeDestroy", bridge.fields())

    def set_bridgepeer(self, ch: Channel, peer: Channel) -> None:
        self.set_var(ch, "BRIDGEPEER", peer.name)
        if peer.tech == "PJSIP":
            self.set_var(ch, "BRIDGEPVTCALLID", peer.callid)

    def clear_bridgepeer(self, ch: Channel) -> None:
        if ch.variables.get("BRIDGEPEER"):
            self.set_var(ch, "BRIDGEPEER", "")
        if ch.variables.get("BRIDGEPVTCALLID"):
            self.set_var(ch, "BRIDGEPVTCALLID", "")

    def connected(self, a: Channel, b: Channel) -> None:
        """Two parties now talk to each other: tell whoever plays them (traffic, phones)."""
        for hook in list(self.connect_hooks):
            hook(a, b)
            hook(b, a)

    def hold(self, ch: Channel) -> None:
        """The phone on `ch` puts its peer on hold (music)."""
        peer = ch.bridge.peer_of(ch) if ch.bridge else None
        if peer is None or peer.on_hold:
            return
        self.emit_channel("Hold", ch)
        peer.on_hold = True
        self.emit_channel("MusicOnHoldStart", peer, [("Class", "default")])

    def unhold(self, ch: Channel) -> None:
        peer = ch.bridge.peer_of(ch) if ch.bridge else None
        self.emit_channel("Unhold", ch)
        if peer is not None and peer.on_hold:
            peer.on_hold = False
            self.emit_channel("MusicOnHoldStop", peer)

    # ---- answering and indications ----------------------------------------------------------------
    def answer(self, ch: Channel) -> bool:
        """Answer `ch` (Newstate Up); a Local ;2 answering also answers its ;1. True if it was not up."""
        if ch.state == ChannelState.UP:
            return False
        self.set_state(ch, ChannelState.UP)
        other = ch.partner
        if other is not None and other.alive and other.state != ChannelState.UP:
            self.set_state(other, ChannelState.UP)
            if other.leg is not None:
                other.leg.answered(other)
        elif ch.leg is not None:
            ch.leg.answered(ch)
        return True

    def indicate_ringing(self, ch: Channel) -> None:
        """Ringing() on a Local ;2 (or a ringing phone): the dialed side shows Ringing."""
        target = ch.partner if ch.partner is not None else ch
        if not target.alive:
            return
        self.set_state(target, ChannelState.RINGING)
        if target.leg is not None:
            target.leg.ringing(target)

    def indicate_busy(self, ch: Channel) -> None:
        self.set_state(ch, ChannelState.BUSY)
        target = ch.partner if ch.partner is not None else ch
        if target.alive and target.leg is not None:
            target.leg.busy(target)

    def media_started(self, ch: Channel) -> None:
        """Audio flows out of `ch` (music on hold): a partner waiting in Answer() gets its first frame."""
        other = ch.partner
        if other is not None and isinstance(other.block, apps.AnswerWait):
            other.block.hurry()

    # ---- hanging up -------------------------------------------------------------------------------
    def request_hangup(self, ch: Channel, cause: int) -> None:
        """A hangup queued on the channel (the far end hung up): HangupRequest now, the hangup soon."""
        if not ch.alive or ch.hangup_requested:
            return
        ch.hangup_requested = True
        self.emit_channel("HangupRequest", ch, [("Cause", str(cause))])
        self.soon(lambda: self.hangup(ch, cause))

    def hangup(self, ch: Channel, cause: int, *, soft: bool = True) -> None:
        """The channel hangs up now: its application stops, it leaves its bridge, its partner is told."""
        if not ch.alive or ch.hanging_up:
            return
        ch.hanging_up = True
        if not ch.hangup_cause:
            ch.hangup_cause = cause
        block, ch.block = ch.block, None
        if block is not None:
            block.stop("hangup")
        if ch.bridge is not None:
            bridge = ch.bridge
            owner = bridge.owner
            if owner is not None:
                owner.member_left(ch)
            else:
                self.clear_bridgepeer(ch)
                self.bridge_leave(ch)
        elif ch.leg is not None:
            leg, ch.leg = ch.leg, None
            leg.gone(ch)
        if ch.pbx and soft:
            self.emit_channel("SoftHangupRequest", ch, [("Cause", "16")])
        if ch.partner is not None and ch.partner.alive:
            self.request_hangup(ch.partner, ch.hangup_cause)
        if ch.tech == "PJSIP" and ch.answered is not None:
            for name, value in _rtp_quality():
                self.set_var(ch, name, value)
        pending, ch.pending_cid = ch.pending_cid, None
        if pending is not None:
            ch.cid_num, ch.cid_name = pending
        self.emit_channel(
            "Hangup",
            ch,
            [("Cause", str(ch.hangup_cause)), ("Cause-txt", CAUSE_TEXT.get(ch.hangup_cause, "Unknown"))],
        )
        if pending is not None:
            self.announce_callerid(ch)
        ch.alive = False
        self.channels.pop(ch.name, None)
        self.update_device(ch.device)

    # ---- calls in and out -------------------------------------------------------------------------
    def sip_call(
        self, endpoint: str, exten: str, *, cid_num: str | None = None, cid_name: str | None = None
    ) -> Channel:
        """A SIP phone or trunk `endpoint` calls `exten`: a PJSIP channel enters the endpoint's context."""
        e = self.endpoints[endpoint]
        cid = (cid_num or e.callerid_num, cid_name or e.callerid_name)
        ch = self.new_pjsip(e, state=ChannelState.RING, context=e.context, exten=exten, cid=cid, inbound=True)
        ch.dnid = exten
        self.set_var(ch, "SIPDOMAIN", "127.0.0.1")
        self.update_device(ch.device)
        self.start_pbx(ch, e.context, exten, 1)
        return ch

    def phone_plan(self, endpoint: Endpoint, ch: Channel) -> PhonePlan:
        if self.phone_policy is not None:
            return self.phone_policy(endpoint, ch)
        return PhonePlan(endpoint.answer_after)

    # ---- reading the world ------------------------------------------------------------------------
    def channel_list(self) -> list[ChannelInfo]:
        return [
            ChannelInfo(
                c.name,
                c.uniqueid,
                c.linkedid,
                c.state.desc,
                c.cid_num,
                c.cid_name,
                c.context,
                c.exten,
                c.priority,
                c.app,
                c.appdata,
                c.bridge.uniqueid if c.bridge else "",
                tuple(c.variables.items()),
            )
            for c in self.channels.values()
            if c.alive
        ]

    def find_channel(self, name: str) -> Channel | None:
        ch = self.channels.get(name)
        return ch if ch is not None and ch.alive else None

    def agi_opened(self, session: AgiSession) -> None:
        self.agi_open.append(session)
        if self.agi_peer is not None:
            self.agi_peer(session)
        else:
            self.agi_requests.append(session)

    def take_agi_requests(self) -> list[AgiSession]:
        out, self.agi_requests = self.agi_requests, []
        return out

    def handle_action(self, message: AmiMessage) -> ActionResult:
        """One AMI action: the replies for the session that sent it, and the events it caused."""
        from pbxsim.actions import handle

        replies = handle(self, message)
        return ActionResult(replies, self.take_events())


@dataclass(frozen=True, slots=True)
class ActionResult:
    replies: list[AmiMessage]
    events: list[AmiMessage]


def _rtp_quality() -> list[tuple[str, str]]:
    """The RTP statistics variables chan_pjsip sets when a call's media ends (all zero: no real media)."""

    def stats(keys: str, pad: str) -> str:
        return "".join(f"{pad}{k}=000.000000;" for k in keys.split())

    directions = ("rx", "tx")
    return [
        (
            "RTPAUDIOQOS",
            "ssrc=0;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;txcount=0;"
            "rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000",
        ),
        ("RTPAUDIOQOSJITTER", stats(" ".join(f"{m}{d}jitter" for d in directions for m in _STATS), "")),
        ("RTPAUDIOQOSLOSS", stats(" ".join(f"{m}{d}lost" for d in directions for m in _STATS), "  ")),
        ("RTPAUDIOQOSRTT", stats(" ".join(f"{m}rtt" for m in _STATS), "     ")),
        ("RTPAUDIOQOSMES", stats(" ".join(f"{m}{d}mes" for d in directions for m in _STATS), "   ")),
    ]


_STATS = ("min", "max", "avg", "stdev")


class WorldClock:
    """ctid's clock when it runs beside pbxsim in one process: the simulated Asterisk's own time."""

    def __init__(self, world: World) -> None:
        self.world = world

    def now(self) -> float:
        return self.world.now
