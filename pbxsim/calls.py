"""Placing calls: the Dial application, AMI Originate, transfers, and the SIP phones that answer them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbxsim.channels import Block, Bridge, Channel, ChannelState, Leg
from pbxsim.dialplan import split_args

if TYPE_CHECKING:
    from pbxsim.world import Timer, World

CLEARED_DIAL_VARIABLES = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)
TRANSFER_VARIABLES = ("BLINDTRANSFER", "ATTENDEDTRANSFER")
ATXFER_NO_ANSWER_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed dial string: Local/EXTEN@CONTEXT or PJSIP/ENDPOINT."""

    tech: str
    resource: str  # what DialString / DIALEDPEERNUMBER show
    exten: str = ""
    context: str = ""

    @classmethod
    def parse(cls, text: str) -> Destination | None:
        tech, sep, rest = text.strip().partition("/")
        if not sep or not rest:
            return None
        if tech == "Local":
            where = rest.split("/", 1)[0]
            exten, at, context = where.partition("@")
            if not at:
                return None
            return cls("Local", where, exten, context or "default")
        if tech == "PJSIP":
            return cls("PJSIP", rest.split("/", 1)[0])
        return None


def create_leg(
    world: World,
    dest: Destination,
    caller: Channel | None,
    linkedid: str | None,
    uniqueids: tuple[str, str] = ("", ""),
) -> Channel | None:
    """The outgoing channel for `dest`, announced as Dial announces it; None when it cannot exist.

    `uniqueids`: an Originate's ChannelId and OtherChannelId (the Local channel's ;2), when it chose them."""
    if dest.tech == "Local":
        if world.dialplan.find(dest.context, dest.exten) is None:
            return None
        one, two = world.new_local_pair(dest.exten, dest.context, linkedid, uniqueids)
        if caller is not None:
            # Asterisk updates a channel's ids before it publishes the NewCallerid / NewConnectedLine
            # events, so the snapshots in between already carry them
            world.set_var(one, "DIALEDPEERNUMBER", dest.resource)
            one.exten = "s"
            one.cid_num, one.cid_name = caller.exten, caller.cid_name
            one.conn_num, one.conn_name = caller.cid_num, caller.cid_name
            _outgoing_newexten(world, one)
            world.announce_callerid(one)
            world.announce_connected(one)
            world.set_var(two, "DIALEDPEERNUMBER", dest.resource)
            two.cid_num, two.cid_name = caller.cid_num, caller.cid_name
            two.conn_num, two.conn_name = caller.exten, caller.cid_name
            world.announce_callerid(two)
            world.announce_connected(two)
        return one
    endpoint = world.endpoints.get(dest.resource)
    if endpoint is None or endpoint.name not in world.registered:
        return None
    phone = world.new_pjsip(
        endpoint,
        state=ChannelState.DOWN,
        context=endpoint.context,
        exten="s",
        linkedid=linkedid,
        uniqueid=uniqueids[0],
    )
    if caller is not None:
        world.set_var(phone, "DIALEDPEERNUMBER", dest.resource)
        phone.conn_num, phone.conn_name = caller.cid_num, caller.cid_name
        _outgoing_newexten(world, phone)
        world.announce_connected(phone)
    return phone


def _outgoing_newexten(world: World, ch: Channel) -> None:
    ch.app, ch.appdata = "AppDial", "(Outgoing Line)"
    world.emit_channel(
        "Newexten",
        ch,
        [("Extension", ch.exten), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")],
        "dialplan,all",
    )


def run_local_far_end(world: World, leg: Channel) -> None:
    if leg.partner is not None:
        world.start_pbx(leg.partner, leg.partner.context, leg.partner.exten, 1)


def ring_phone(world: World, ch: Channel) -> None:
    """A SIP phone rings, answers per its plan, and may put the call on hold or hang up after talking."""
    assert ch.endpoint is not None
    plan = world.phone_plan(ch.endpoint, ch)

    def ring() -> None:
        if ch.alive and ch.state == ChannelState.DOWN:
            world.indicate_ringing(ch)

    def answer() -> None:
        if ch.alive and ch.state != ChannelState.UP and ch.leg is not None:
            world.answer(ch)
            if plan.talk_time is not None:
                world.schedule(plan.talk_time, lambda: world.request_hangup(ch, 16) if ch.alive else None)
            if plan.hold_at is not None:
                world.schedule(plan.hold_at, lambda: world.hold(ch) if ch.alive else None)
                world.schedule(plan.hold_at + plan.hold_for, lambda: world.unhold(ch) if ch.alive else None)

    world.schedule(0.009, ring)
    if plan.answer_after is not None:
        world.schedule(max(plan.answer_after, 0.01), answer)


class DialCall(Block, Leg):
    """Dial(): ring one destination, bridge the caller with it on answer, and tear down as Asterisk does."""

    def __init__(self, world: World, caller: Channel, dest: Destination, timeout: float | None) -> None:
        self.world = world
        self.caller = caller
        self.dest = dest
        self.started = world.now
        self.state = "ringing"  # ringing, bridged, peer_gone, done
        self.rang = False
        self.out: Channel | None = None
        self.bridge: Bridge | None = None
        self.timer: Timer | None = world.schedule(timeout, self._timeout) if timeout else None

    # -- while ringing --
    def ringing(self, channel: Channel) -> None:
        if self.state != "ringing" or self.rang:
            return
        self.rang = True
        elapsed = self.world.now - self.started
        self.world.set_var(self.caller, "RINGTIME", str(int(elapsed)))
        self.world.set_var(self.caller, "RINGTIME_MS", str(int(elapsed * 1000)))
        self._dial_event("DialState", channel, "RINGING")

    def answered(self, channel: Channel) -> None:
        if self.state != "ringing":
            return
        w, caller = self.world, self.caller
        self._cancel_timer()
        channel.leg = None
        w.set_var(caller, "DIALSTATUS", "ANSWER")
        w.set_var(caller, "DIALEDPEERNAME", channel.name)
        w.set_var(caller, "DIALEDPEERNUMBER", self.dest.resource)
        self._dial_event("DialEnd", channel, "ANSWER")
        self.state = "bridged"
        bridge = self.bridge = w.bridge_create(self)
        channel.exten = ""
        _outgoing_newexten(w, channel)
        w.bridge_enter(bridge, channel)
        w.bridge_enter(bridge, caller)
        for ch in (caller, channel):
            for name in TRANSFER_VARIABLES:
                if ch.variables.get(name):
                    w.set_var(ch, name, "")
        w.set_bridgepeer(channel, caller)
        w.set_bridgepeer(caller, channel)
        w.connected(caller, channel)

    def busy(self, channel: Channel) -> None:
        self._unanswered("BUSY", channel, hangup_cause=0)

    def gone(self, channel: Channel) -> None:
        if self.state != "ringing":
            return
        self.state = "done"
        self._cancel_timer()
        status = "BUSY" if channel.hangup_cause == 17 else "NOANSWER"
        self._dial_event("DialEnd", channel, status)
        self.world.set_var(self.caller, "DIALSTATUS", status)
        self.world.resume(self.caller)

    def _timeout(self) -> None:
        if self.state == "ringing" and self.out is not None:
            self._unanswered("NOANSWER", self.out, hangup_cause=0)

    def _unanswered(self, status: str, channel: Channel, hangup_cause: int) -> None:
        if self.state != "ringing":
            return
        self.state = "done"
        self._cancel_timer()
        self._dial_event("DialEnd", channel, status)
        channel.leg = None
        self.world.hangup(channel, hangup_cause)
        self.world.set_var(self.caller, "DIALSTATUS", status)
        self.world.resume(self.caller)

    # -- the caller stops dialing --
    def stop(self, reason: str) -> None:
        w, caller = self.world, self.caller
        if self.state == "ringing":
            self.state = "done"
            self._cancel_timer()
            if self.out is not None and self.out.alive:
                self._dial_event("DialEnd", self.out, "CANCEL")
                self.out.leg = None
                w.hangup(self.out, 16)
            w.set_var(caller, "DIALSTATUS", "CANCEL")
        elif self.state == "bridged" and self.bridge is not None:
            self.state = "done"
            bridge = self.bridge
            peer = bridge.peer_of(caller)
            w.clear_bridgepeer(caller)
            if peer is not None:
                w.clear_bridgepeer(peer)
            w.bridge_leave(caller)
            if peer is not None:
                w.bridge_leave(peer)
            self._answered_variables()
            w.bridge_destroy(bridge)
            if peer is not None and peer.alive:
                w.hangup(peer, 16)
        elif self.state == "peer_gone":
            self._finish_after_peer(resume=False)

    def redirect(self, context: str, exten: str, priority: int) -> bool:
        """The caller is sent elsewhere (Redirect, blind transfer) while dialing or talking."""
        w, caller = self.world, self.caller
        if self.state == "ringing":
            self.stop("redirect")
            caller.block = None
            w.start_pbx(caller, context, exten, priority)
            return True
        if not caller.skip_newexten:
            w.announce_goto(caller, context, exten, priority)
        caller.block = None
        if self.state == "bridged" and self.bridge is not None:
            self.state = "done"
            bridge = self.bridge
            peer = bridge.peer_of(caller)
            moving = peer is not None and peer.skip_newexten  # redirected too (ExtraChannel)
            if peer is not None and not moving:
                w.clear_bridgepeer(peer)
            w.bridge_leave(caller)
            w.set_var(caller, "DIALSTATUS", "ANSWER")
            if peer is not None:
                w.bridge_leave(peer)
                if peer.alive and not peer.pbx and not moving:
                    w.hangup(peer, 16)
            w.bridge_destroy(bridge)
        else:
            if self.state == "peer_gone" and self.bridge is not None:
                w.bridge_leave(caller)
                w.bridge_destroy(self.bridge)
            w.set_var(caller, "DIALSTATUS", "ANSWER")
        self.state = "done"
        w.start_pbx(caller, context, exten, priority)
        return True

    # -- the other party leaves the bridge --
    def member_left(self, channel: Channel) -> None:
        w = self.world
        if channel is self.caller or self.state != "bridged":
            w.bridge_leave(channel)
            return
        w.clear_bridgepeer(channel)
        w.clear_bridgepeer(self.caller)
        w.bridge_leave(channel)
        if self.bridge is not None and self.bridge.peer_of(self.caller) is None:
            self.state = "peer_gone"
            w.soon(lambda: self._finish_after_peer(resume=True))

    def _finish_after_peer(self, resume: bool) -> None:
        if self.state != "peer_gone":
            return
        self.state = "done"
        w, caller = self.world, self.caller
        if self.bridge is not None:
            if caller.bridge is self.bridge:
                w.bridge_leave(caller)
            w.bridge_destroy(self.bridge)
        self._answered_variables()
        if resume and caller.alive and caller.block is self:
            w.resume(caller)

    # -- helpers --
    def _answered_variables(self) -> None:
        w, caller = self.world, self.caller
        answered = caller.answered if caller.answered is not None else self.started
        for name, since in (("ANSWEREDTIME", answered), ("DIALEDTIME", caller.created)):
            seconds = w.now - since
            w.set_var(caller, name, str(int(seconds)))
            w.set_var(caller, f"{name}_MS", str(int(seconds * 1000)))
        w.set_var(caller, "DIALSTATUS", "ANSWER")

    def _dial_event(self, event: str, dest: Channel, status: str) -> None:
        self.world.emit(event, [*self.caller.fields(), *dest.fields("Dest"), ("DialStatus", status)])

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def start_dial(world: World, caller: Channel, data: str) -> bool:
    """Run Dial(target,timeout,options); False when it finished at once (nothing could be dialed)."""
    args = split_args(data)
    for name in CLEARED_DIAL_VARIABLES:
        world.set_var(caller, name, "")
    dest = Destination.parse(args[0].split("&")[0]) if args and args[0] else None
    try:
        timeout = float(args[1]) if len(args) > 1 and args[1].strip() else None
    except ValueError:
        timeout = None
    out = create_leg(world, dest, caller, caller.linkedid) if dest is not None else None
    if dest is None or out is None:
        world.set_var(caller, "DIALSTATUS", "CHANUNAVAIL")
        return False
    call = DialCall(world, caller, dest, timeout)
    call.out = out
    out.leg = call
    caller.block = call
    if out.partner is not None:
        world.local_bridge(out, out.partner)
    world.emit("DialBegin", [*caller.fields(), *out.fields("Dest"), ("DialString", dest.resource)])
    if out.partner is not None:
        run_local_far_end(world, out)
    else:
        assert out.endpoint is not None
        world.set_connected(caller, out.endpoint.callerid_num, out.endpoint.callerid_name)
        ring_phone(world, out)
    return True


class OriginateCall(Leg):
    """AMI Originate: dial a channel, and when it answers run it at Context/Exten/Priority."""

    def __init__(
        self,
        world: World,
        action_id: str | None,
        spec: str,
        context: str,
        exten: str,
        priority: int,
        timeout: float,
        uniqueids: tuple[str, str] = ("", ""),
    ) -> None:
        self.world = world
        self.action_id = action_id
        self.uniqueids = uniqueids  # ChannelId, OtherChannelId
        self.spec = spec
        self.context, self.exten, self.priority = context, exten, priority
        self.timeout = timeout
        self.out: Channel | None = None
        self.timer: Timer | None = None
        self.done = False

    def start(self, callerid: tuple[str, str] | None, variables: list[tuple[str, str]]) -> None:
        w = self.world
        dest = Destination.parse(self.spec)
        out = create_leg(w, dest, None, None, self.uniqueids) if dest is not None else None
        if dest is None or out is None:
            self._respond(False, 0)
            return
        self.out = out
        out.leg = self
        two = out.partner
        if two is not None:
            out.app, out.appdata = "AppDial2", "(Outgoing Line)"
            w.emit_channel(
                "Newexten",
                out,
                [("Extension", out.exten), ("Application", "AppDial2"), ("AppData", "(Outgoing Line)")],
                "dialplan,all",
            )
        for name, value in reversed(variables):
            w.set_var(out, name, value)
        if callerid is not None:
            w.set_callerid(out, *callerid)
            w.set_connected(out, *callerid)
        if two is not None:
            for name, value in variables:
                w.set_var(two, name, value)
            if callerid is not None:
                (two.cid_num, two.cid_name), (two.conn_num, two.conn_name) = callerid, callerid
                w.announce_callerid(two)
                w.announce_connected(two)
            w.local_bridge(out, two)
        w.emit("DialBegin", [*out.fields("Dest"), ("DialString", dest.resource)])
        self.timer = w.schedule(self.timeout, self._timeout)
        if two is not None:
            run_local_far_end(w, out)
        else:
            ring_phone(w, out)

    def answered(self, channel: Channel) -> None:
        if self.done:
            return
        self.done = True
        self._cancel()
        channel.leg = None
        w = self.world
        w.emit("DialEnd", [*channel.fields("Dest"), ("DialStatus", "ANSWER")])
        self._respond(True, 4)
        w.start_pbx(channel, self.context, self.exten, self.priority)

    def busy(self, channel: Channel) -> None:
        if self.done:
            return
        self.done = True
        self._cancel()
        self._respond(False, 5)
        self.world.emit("DialEnd", [*channel.fields("Dest"), ("DialStatus", "BUSY")])
        channel.leg = None
        self.world.hangup(channel, 0)

    def gone(self, channel: Channel) -> None:
        if self.done:
            return
        self.done = True
        self._cancel()
        self._respond(False, 1)

    def _timeout(self) -> None:
        if self.done or self.out is None:
            return
        self.done = True
        self.out.leg = None
        self.world.hangup(self.out, 19)
        self._respond(False, 3)

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _respond(self, success: bool, reason: int) -> None:
        out = self.out
        fields: list[tuple[str, str]] = []
        if self.action_id is not None:
            fields.append(("ActionID", self.action_id))
        if success and out is not None:
            fields += [
                ("Response", "Success"),
                ("Channel", out.name),
                ("Context", self.context),
                ("Exten", self.exten),
                ("Reason", str(reason)),
                ("Uniqueid", out.uniqueid),
                ("CallerIDNum", out.cid_num),
                ("CallerIDName", out.cid_name),
            ]
        else:
            fields += [
                ("Response", "Failure"),
                ("Channel", self.spec),
                ("Context", self.context),
                ("Exten", self.exten),
                ("Reason", str(reason)),
                ("Uniqueid", "<unknown>"),
                ("CallerIDNum", "<unknown>"),
                ("CallerIDName", "<unknown>"),
            ]
        self.world.emit("OriginateResponse", fields)


def blind_transfer(world: World, transferer: Channel, context: str, exten: str) -> bool:
    """AMI BlindTransfer: the transferer's bridge peer goes to context,exten,1; the transferer hangs up."""
    bridge = transferer.bridge
    transferee = bridge.peer_of(transferer) if bridge else None
    if bridge is None or transferee is None:
        return False
    world.emit_channel("Unhold", transferer)
    world.set_var(transferee, "BLINDTRANSFER", transferer.name)
    world.set_var(transferer, "BLINDTRANSFER", transferee.name)
    world.clear_bridgepeer(transferer)
    world.emit(
        "BlindTransfer",
        [
            ("Result", "Success"),
            *transferer.fields("Transferer"),
            *transferee.fields("Transferee"),
            *bridge.fields(),
            ("IsExternal", "Yes"),
            ("Context", context),
            ("Extension", exten),
        ],
    )
    world.async_goto(transferee, context, exten, 1)
    if transferer.alive and transferer.bridge is None and not transferer.pbx:
        world.hangup(transferer, 16)
    return True


class AttendedTransfer(Leg):
    """AMI Atxfer, played as the feature code would: *2, the target's digits, a consultation call, then
    the transferer hanging up merges the two calls (BridgeMerge, AttendedTransfer)."""

    DIGIT_GAP = 0.06

    def __init__(self, world: World, transferer: Channel, context: str, exten: str) -> None:
        self.world = world
        self.transferer = transferer
        self.context = context
        self.exten = exten
        self.original = transferer.bridge
        self.transferee = self.original.peer_of(transferer) if self.original else None
        self.consult: Bridge | None = None
        self.target: Channel | None = None
        self.timer: Timer | None = None
        self.finished = False

    def start(self) -> None:
        w, t = self.world, self.transferer
        w.set_var(t, "TRANSFER_CONTEXT", self.context)
        self._digit("*")
        w.schedule(0.16, lambda: self._digit("2"))
        w.schedule(0.26, self._hold)
        for i, digit in enumerate(self.exten):
            w.schedule(0.32 + self.DIGIT_GAP * i, self._digit_later(digit))
        w.schedule(0.32 + self.DIGIT_GAP * max(len(self.exten) - 1, 0), self._consult)

    def _digit_later(self, digit: str) -> Callable[[], None]:
        return lambda: self._digit(digit)

    def _digit(self, digit: str) -> None:
        t = self.transferer
        if t.alive:
            self.world.emit_channel(
                "DTMFEnd", t, [("Digit", digit), ("DurationMs", "0"), ("Direction", "Received")], "dtmf,all"
            )

    def _hold(self) -> None:
        w, t, peer = self.world, self.transferer, self.transferee
        if not t.alive or peer is None or not peer.alive:
            return
        w.emit_channel("Hold", t)
        peer.on_hold = True
        w.emit_channel("MusicOnHoldStart", peer, [("Class", "default")])

    def _consult(self) -> None:
        w, t = self.world, self.transferer
        if not t.alive or t.bridge is not self.original or self.original is None:
            return
        if w.dialplan.find(self.context, self.exten) is None:
            return
        one, two = w.new_local_pair(self.exten, self.context, t.linkedid)
        self.target = one
        one.leg = self
        w.set_var(one, "TRANSFERERNAME", t.name)
        w.set_var(one, "ATTENDEDTRANSFER", t.name)
        consult = self.consult = w.bridge_create(self)
        w.set_var(two, "ATTENDEDTRANSFER", t.name)
        w.set_var(two, "TRANSFERERNAME", t.name)
        w.set_callerid(two, t.cid_num, t.cid_name)
        w.local_bridge(one, two)
        w.set_connected(one, t.cid_num, t.cid_name)
        w.bridge_enter(consult, one)
        w.set_var(one, "ATTENDEDTRANSFER", "")
        w.start_pbx(two, two.context, two.exten, 1)
        w.soon(self._join_consultation)
        self.timer = w.schedule(ATXFER_NO_ANSWER_TIMEOUT, self._no_answer)

    def _join_consultation(self) -> None:
        """The transferer moves from the call to the consultation bridge, where the target rings."""
        w, t, one = self.world, self.transferer, self.target
        if one is None or self.consult is None or self.finished or not t.alive or not one.alive:
            return
        w.bridge_leave(t)
        w.bridge_enter(self.consult, t)
        w.set_bridgepeer(one, t)
        w.set_bridgepeer(t, one)
        w.set_connected(t, one.cid_num, one.cid_name, propagate=True)

    def ringing(self, channel: Channel) -> None:
        self.world.emit("DialState", [*channel.fields("Dest"), ("DialStatus", "RINGING")])

    def answered(self, channel: Channel) -> None:
        w = self.world
        if self.timer is not None:
            self.timer.cancel()
        channel.leg = None
        w.emit("DialEnd", [*channel.fields("Dest"), ("DialStatus", "ANSWER")])
        if channel.bridge is not None and self.transferer.bridge is channel.bridge:
            w.set_bridgepeer(channel, self.transferer)
            w.set_bridgepeer(self.transferer, channel)

    def gone(self, channel: Channel) -> None:
        self._abort()

    def _no_answer(self) -> None:
        if self.target is not None and self.target.alive and self.target.state != ChannelState.UP:
            self.target.leg = None
            self._abort()

    def _abort(self) -> None:
        """The consultation failed: the transferer goes back to the original call."""
        if self.finished:
            return
        self.finished = True
        w, t = self.world, self.transferer
        if self.target is not None and self.target.alive:
            target, self.target = self.target, None
            target.leg = None
            if target.bridge is not None:
                w.clear_bridgepeer(target)
                w.bridge_leave(target)
            w.hangup(target, 16)
        if self.consult is not None and t.alive and t.bridge is self.consult:
            w.clear_bridgepeer(t)
            w.bridge_leave(t)
        if self.consult is not None:
            w.bridge_destroy(self.consult)
        if t.alive and self.original is not None and self.transferee is not None and self.transferee.alive:
            w.bridge_enter(self.original, t)
            self._unhold()
            w.set_bridgepeer(t, self.transferee)
            w.set_bridgepeer(self.transferee, t)

    def _unhold(self) -> None:
        peer = self.transferee
        if peer is not None and peer.on_hold:
            peer.on_hold = False
            self.world.emit_channel("MusicOnHoldStop", peer)

    def member_left(self, channel: Channel) -> None:
        w = self.world
        if channel is not self.transferer or self.finished:
            w.clear_bridgepeer(channel)
            w.bridge_leave(channel)
            if channel is self.target:
                self.target = None
                self._abort()
            return
        self.finished = True
        w.clear_bridgepeer(channel)
        w.bridge_leave(channel)
        target, original, consult, transferee = self.target, self.original, self.consult, self.transferee
        if (
            target is None
            or original is None
            or consult is None
            or transferee is None
            or not transferee.alive
        ):
            return
        if self.timer is not None:
            self.timer.cancel()
        self._unhold()
        w.emit("BridgeMerge", [*original.fields("To"), *consult.fields("From")])
        w.bridge_leave(target)
        w.bridge_enter(original, target)
        w.set_bridgepeer(transferee, target)
        w.set_bridgepeer(target, transferee)
        w.emit(
            "AttendedTransfer",
            [
                ("Result", "Success"),
                *channel.fields("OrigTransferer"),
                *original.fields("Orig"),
                *channel.fields("SecondTransferer"),
                *consult.fields("Second"),
                *transferee.fields("Transferee"),
                *target.fields("TransferTarget"),
                ("IsExternal", "No"),
                ("DestType", "Bridge"),
                ("DestBridgeUniqueid", original.uniqueid),
            ],
        )
        w.bridge_destroy(consult)
        w.set_connected(target, transferee.cid_num, transferee.cid_name, propagate=True)
        w.set_connected(transferee, target.cid_num, target.cid_name, propagate=True)
        if target.leg is self:
            target.leg = None
        w.connected(transferee, target)
