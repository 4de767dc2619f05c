"""Typed AMI events: AMI's string headers converted once, at the boundary, into frozen dataclasses."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from ctid.ami.message import AmiMessage

UNKNOWN = "<unknown>"


class ChannelState(IntEnum):
    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7
    DIALING_OFFHOOK = 8
    PRERING = 9

    @property
    def desc(self) -> str:
        """Asterisk's ChannelStateDesc."""
        return _STATE_DESC[self]


_STATE_DESC = {
    ChannelState.DOWN: "Down",
    ChannelState.RESERVED: "Rsrvd",
    ChannelState.OFFHOOK: "OffHook",
    ChannelState.DIALING: "Dialing",
    ChannelState.RING: "Ring",
    ChannelState.RINGING: "Ringing",
    ChannelState.UP: "Up",
    ChannelState.BUSY: "Busy",
    ChannelState.DIALING_OFFHOOK: "Dialing Offhook",
    ChannelState.PRERING: "Pre-ring",
}


_STATES = {str(s.value): s for s in ChannelState}


def _state(value: str | None) -> ChannelState:
    return _STATES.get(value or "0", ChannelState.DOWN)


def _clean(value: str | None) -> str:
    """Asterisk writes '<unknown>' for an empty caller id; ctid keeps ''."""
    return "" if value is None or value == UNKNOWN else value


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


class ChannelInfo(NamedTuple):
    """The channel snapshot every channel event carries (with a prefix such as Dest or Transferee).

    A NamedTuple rather than a frozen dataclass: just as immutable, and built several times faster, which
    matters at tens of thousands of events a second.
    """

    channel: str
    uniqueid: str
    linkedid: str
    state: ChannelState
    caller_num: str
    caller_name: str
    connected_num: str
    connected_name: str
    context: str
    exten: str
    priority: int


_new_tuple = tuple.__new__


def _snapshot_pattern(prefix: str) -> re.Pattern[str]:
    # the order of Asterisk's channel snapshot (manager.c, ast_manager_build_channel_state_string_prefix)
    p = re.escape(prefix)
    return re.compile(
        rf"([^\r]*)\r\n{p}ChannelState: ([^\r]*)\r\n{p}ChannelStateDesc: [^\r]*\r\n"
        rf"{p}CallerIDNum: ([^\r]*)\r\n{p}CallerIDName: ([^\r]*)\r\n{p}ConnectedLineNum: ([^\r]*)\r\n"
        rf"{p}ConnectedLineName: ([^\r]*)\r\n{p}Language: [^\r]*\r\n{p}AccountCode: [^\r]*\r\n"
        rf"{p}Context: ([^\r]*)\r\n{p}Exten: ([^\r]*)\r\n{p}Priority: ([^\r]*)\r\n{p}Uniqueid: ([^\r]*)\r\n"
        rf"{p}Linkedid: ([^\r]*)"
    )


_SNAPSHOT = {
    prefix: _snapshot_pattern(prefix)
    for prefix in (
        *("", "Dest", "LocalOne", "LocalTwo", "Transferer", "Transferee"),
        *("OrigTransferer", "SecondTransferer", "TransferTarget"),
    )
}


def channel_info(h: AmiMessage, prefix: str = "") -> ChannelInfo | None:
    """The channel snapshot under `prefix`: one regex pass over a raw message, header lookups otherwise."""
    raw = h.raw
    pattern = _SNAPSHOT.get(prefix)
    if raw is not None and pattern is not None:
        key = "\r\n" + prefix + "Channel: "
        start = raw.find(key)
        m = pattern.match(raw, start + len(key)) if start >= 0 else None
        if m is not None:
            channel, state, cnum, cname, lnum, lname, context, exten, priority, uniqueid, linkedid = (
                m.groups()
            )
            try:
                number = int(priority)
            except ValueError:
                number = 1
            return _new_tuple(  # ChannelInfo(...) without the generated __new__: runs for every event
                ChannelInfo,
                (
                    channel,
                    uniqueid,
                    linkedid or uniqueid,
                    _STATES.get(state, ChannelState.DOWN),
                    "" if cnum == UNKNOWN else cnum,
                    "" if cname == UNKNOWN else cname,
                    "" if lnum == UNKNOWN else lnum,
                    "" if lname == UNKNOWN else lname,
                    context,
                    exten,
                    number,
                ),
            )
    name = h.get(prefix + "Channel")
    if name is None:
        return None
    return ChannelInfo(
        channel=name,
        uniqueid=h.get(prefix + "Uniqueid", ""),
        linkedid=h.get(prefix + "Linkedid", "") or h.get(prefix + "Uniqueid", ""),
        state=_state(h.get(prefix + "ChannelState")),
        caller_num=_clean(h.get(prefix + "CallerIDNum")),
        caller_name=_clean(h.get(prefix + "CallerIDName")),
        connected_num=_clean(h.get(prefix + "ConnectedLineNum")),
        connected_name=_clean(h.get(prefix + "ConnectedLineName")),
        context=h.get(prefix + "Context", ""),
        exten=h.get(prefix + "Exten", ""),
        priority=_int(h.get(prefix + "Priority"), 1),
    )


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """Base of all typed events. `ts` is Asterisk's `Timestamp:` (epoch seconds) when it sent one."""

    name: str
    ts: float | None
    action_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class UnknownEvent(AmiEvent):
    """An event ctid does not model: counted and ignored."""


@dataclass(frozen=True, slots=True)
class ChannelEvent(AmiEvent):
    chan: ChannelInfo


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Newstate(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class NewCallerid(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class NewConnectedLine(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Newexten(ChannelEvent):
    application: str
    app_data: str


@dataclass(frozen=True, slots=True)
class VarSet(ChannelEvent):
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class Hold(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Unhold(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class MusicOnHoldStart(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class MusicOnHoldStop(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class HangupRequest(ChannelEvent):
    cause: int


@dataclass(frozen=True, slots=True)
class SoftHangupRequest(ChannelEvent):
    cause: int


@dataclass(frozen=True, slots=True)
class Hangup(ChannelEvent):
    cause: int
    cause_txt: str


@dataclass(frozen=True, slots=True)
class BridgeEnter(ChannelEvent):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeLeave(ChannelEvent):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class Rename(AmiEvent):
    channel: str
    new_name: str
    uniqueid: str


@dataclass(frozen=True, slots=True)
class DialBegin(AmiEvent):
    caller: ChannelInfo | None  # None for the caller-less DialBegin an Originate produces
    dest: ChannelInfo
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialState(AmiEvent):
    caller: ChannelInfo | None
    dest: ChannelInfo
    status: str


@dataclass(frozen=True, slots=True)
class DialEnd(AmiEvent):
    caller: ChannelInfo | None
    dest: ChannelInfo
    status: str


@dataclass(frozen=True, slots=True)
class LocalBridge(AmiEvent):
    one: ChannelInfo
    two: ChannelInfo


@dataclass(frozen=True, slots=True)
class BridgeCreate(AmiEvent):
    bridge_id: str
    bridge_type: str


@dataclass(frozen=True, slots=True)
class BridgeDestroy(AmiEvent):
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeMerge(AmiEvent):
    to_bridge: str
    from_bridge: str


@dataclass(frozen=True, slots=True)
class BlindTransfer(AmiEvent):
    success: bool
    transferer: ChannelInfo | None
    transferee: ChannelInfo | None
    bridge_id: str
    context: str
    extension: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer(AmiEvent):
    success: bool
    orig_transferer: ChannelInfo | None
    second_transferer: ChannelInfo | None
    transferee: ChannelInfo | None
    target: ChannelInfo | None
    dest_type: str
    dest_bridge: str


@dataclass(frozen=True, slots=True)
class OriginateResponse(AmiEvent):
    success: bool
    channel: str  # without the -xxxxxxxx suffix when it failed
    uniqueid: str  # '' when the call was never answered
    context: str
    exten: str
    reason: int  # AST_CONTROL_*: 3 no answer, 4 answered, 5 busy, 8 congestion, 0 no such channel


@dataclass(frozen=True, slots=True)
class DeviceStateChange(AmiEvent):
    device: str
    state: str  # NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD, UNKNOWN


@dataclass(frozen=True, slots=True)
class ExtensionStatus(AmiEvent):
    exten: str
    context: str
    hint: str
    status: int
    status_text: str


@dataclass(frozen=True, slots=True)
class CoreShowChannel(ChannelEvent):
    application: str
    app_data: str
    bridge_id: str
    duration_s: int


@dataclass(frozen=True, slots=True)
class ChannelStatus(ChannelEvent):
    """One `Status` list entry; `variables` holds what the action's `Variables:` asked for."""

    application: str
    app_data: str
    bridge_id: str
    seconds: int
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ListComplete(AmiEvent):
    """The `...Complete` event that ends a list action's answer."""

    items: int


@dataclass(frozen=True, slots=True)
class FullyBooted(AmiEvent):
    pass


@dataclass(frozen=True, slots=True)
class Shutdown(AmiEvent):
    pass


def _hms(value: str | None) -> int:
    parts = (value or "0").split(":")
    try:
        total = 0
        for p in parts:
            total = total * 60 + int(p)
        return total
    except ValueError:
        return 0


def _ts(h: AmiMessage) -> float | None:
    text = h.raw
    if text is not None:  # inline of h.get("Timestamp"): this runs for every event
        start = text.find("\r\nTimestamp: ")
        if start < 0:
            return None
        end = text.find("\r\n", start + 13)
        raw: str | None = text[start + 13 :] if end < 0 else text[start + 13 : end]
    else:
        raw = h.get("Timestamp")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _require(info: ChannelInfo | None) -> ChannelInfo:
    if info is None:
        raise KeyError("Channel")
    return info


_Builder = Callable[[str, float | None, AmiMessage, AmiMessage], AmiEvent]


def _chan_event(cls: type[ChannelEvent]) -> _Builder:
    return lambda n, ts, h, m: cls(n, ts, _require(channel_info(h)))


def _status(n: str, ts: float | None, h: AmiMessage, m: AmiMessage) -> AmiEvent:
    # Asterisk answers '(null)' for a variable that is not set
    pairs = (v.split("=", 1) for v in m.get_all("Variable") if "=" in v)
    variables = tuple((k, v) for k, v in pairs if v != "(null)")
    return ChannelStatus(
        n,
        ts,
        _require(channel_info(h)),
        h.get("Application", ""),
        h.get("Data", ""),
        h.get("BridgeID", h.get("BridgeId", "")),
        _int(h.get("Seconds")),
        variables,
    )


_BUILDERS: dict[str, _Builder] = {
    "Newchannel": _chan_event(Newchannel),
    "Newstate": _chan_event(Newstate),
    "NewCallerid": _chan_event(NewCallerid),
    "NewConnectedLine": _chan_event(NewConnectedLine),
    "Hold": _chan_event(Hold),
    "Unhold": _chan_event(Unhold),
    "MusicOnHoldStart": _chan_event(MusicOnHoldStart),
    "MusicOnHoldStop": _chan_event(MusicOnHoldStop),
    "Newexten": lambda n, ts, h, m: Newexten(
        n, ts, _require(channel_info(h)), h.get("Application", ""), h.get("AppData", "")
    ),
    "VarSet": lambda n, ts, h, m: VarSet(n, ts, _require(channel_info(h)), h["Variable"], h.get("Value", "")),
    "HangupRequest": lambda n, ts, h, m: HangupRequest(
        n, ts, _require(channel_info(h)), _int(h.get("Cause"))
    ),
    "SoftHangupRequest": lambda n, ts, h, m: SoftHangupRequest(
        n, ts, _require(channel_info(h)), _int(h.get("Cause"))
    ),
    "Hangup": lambda n, ts, h, m: Hangup(
        n, ts, _require(channel_info(h)), _int(h.get("Cause")), h.get("Cause-txt", "")
    ),
    "BridgeEnter": lambda n, ts, h, m: BridgeEnter(n, ts, _require(channel_info(h)), h["BridgeUniqueid"]),
    "BridgeLeave": lambda n, ts, h, m: BridgeLeave(n, ts, _require(channel_info(h)), h["BridgeUniqueid"]),
    "Rename": lambda n, ts, h, m: Rename(n, ts, h["Channel"], h["Newname"], h.get("Uniqueid", "")),
    "DialBegin": lambda n, ts, h, m: DialBegin(
        n, ts, channel_info(h), _require(channel_info(h, "Dest")), h.get("DialString", "")
    ),
    "DialState": lambda n, ts, h, m: DialState(
        n, ts, channel_info(h), _require(channel_info(h, "Dest")), h.get("DialStatus", "")
    ),
    "DialEnd": lambda n, ts, h, m: DialEnd(
        n, ts, channel_info(h), _require(channel_info(h, "Dest")), h.get("DialStatus", "")
    ),
    "LocalBridge": lambda n, ts, h, m: LocalBridge(
        n, ts, _require(channel_info(h, "LocalOne")), _require(channel_info(h, "LocalTwo"))
    ),
    "BridgeCreate": lambda n, ts, h, m: BridgeCreate(n, ts, h["BridgeUniqueid"], h.get("BridgeType", "")),
    "BridgeDestroy": lambda n, ts, h, m: BridgeDestroy(n, ts, h["BridgeUniqueid"]),
    "BridgeMerge": lambda n, ts, h, m: BridgeMerge(n, ts, h["ToBridgeUniqueid"], h["FromBridgeUniqueid"]),
    "BlindTransfer": lambda n, ts, h, m: BlindTransfer(
        n,
        ts,
        h.get("Result") == "Success",
        channel_info(h, "Transferer"),
        channel_info(h, "Transferee"),
        h.get("BridgeUniqueid", ""),
        h.get("Context", ""),
        h.get("Extension", ""),
    ),
    "AttendedTransfer": lambda n, ts, h, m: AttendedTransfer(
        n,
        ts,
        h.get("Result") == "Success",
        channel_info(h, "OrigTransferer"),
        channel_info(h, "SecondTransferer"),
        channel_info(h, "Transferee"),
        channel_info(h, "TransferTarget"),
        h.get("DestType", ""),
        h.get("DestBridgeUniqueid", ""),
    ),
    "OriginateResponse": lambda n, ts, h, m: OriginateResponse(
        n,
        ts,
        h.get("Response") == "Success",
        h.get("Channel", ""),
        _clean(h.get("Uniqueid")),
        h.get("Context", ""),
        h.get("Exten", ""),
        _int(h.get("Reason")),
    ),
    "DeviceStateChange": lambda n, ts, h, m: DeviceStateChange(n, ts, h["Device"], h.get("State", "UNKNOWN")),
    "ExtensionStatus": lambda n, ts, h, m: ExtensionStatus(
        n,
        ts,
        h.get("Exten", ""),
        h.get("Context", ""),
        h.get("Hint", ""),
        _int(h.get("Status"), -1),
        h.get("StatusText", ""),
    ),
    "CoreShowChannel": lambda n, ts, h, m: CoreShowChannel(
        n,
        ts,
        _require(channel_info(h)),
        h.get("Application", ""),
        h.get("ApplicationData", ""),
        h.get("BridgeId", h.get("BridgeID", "")),
        _hms(h.get("Duration")),
    ),
    "Status": _status,
    "FullyBooted": lambda n, ts, h, m: FullyBooted(n, ts),
    "Shutdown": lambda n, ts, h, m: Shutdown(n, ts),
}


def decode_event(msg: AmiMessage) -> AmiEvent:
    """The typed event for an AMI event message; UnknownEvent for names ctid does not model or bad fields."""
    h = msg
    name = msg.name
    ts = _ts(h)
    builder = _BUILDERS.get(name)
    event: AmiEvent
    if builder is None:
        if name.endswith("Complete") and "EventList" in h:
            event = ListComplete(name, ts, _int(h.get("ListItems")))
        else:
            event = UnknownEvent(name, ts)
    else:
        try:
            event = builder(name, ts, h, msg)
        except KeyError:
            event = UnknownEvent(name, ts)
    if name in _ANSWERS or isinstance(event, ListComplete):
        action_id = msg.get("ActionID")
        if action_id is not None:
            object.__setattr__(event, "action_id", action_id)
    return event


# events that answer an action and carry its ActionID; live events never do
_ANSWERS = frozenset(
    {"OriginateResponse", "CoreShowChannel", "Status", "DeviceStateChange", "ExtensionStatus"}
)


# Events that change what the call-state model knows. The others (HangupRequest, NewConnectedLine, DialState,
# MusicOnHold*, LocalBridge, BridgeCreate...) repeat what these say, so a live stream skips them unparsed.
STATE_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "Newexten",
        "VarSet",
        "Rename",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeMerge",
        "BridgeDestroy",
        "Hold",
        "Unhold",
        "BlindTransfer",
        "AttendedTransfer",
        "OriginateResponse",
        "DeviceStateChange",
        "Hangup",
        "Shutdown",
    }
)

# How the state model reads each event: 1 always, 2 a VarSet of a variable it tracks (CTID_*, AMDSTATUS; every
# other VarSet such as DIALSTATUS or BRIDGEPEER is skipped unparsed), 3 a Newexten inside ctid's own contexts.
RELEVANCE = {name: 1 for name in STATE_EVENTS} | {"VarSet": 2, "Newexten": 3}


def relevant(msg: AmiMessage) -> bool:
    """Whether the state model can use this event; cheap enough to run before any header is split.

    The VarSet and Newexten rules together skip about half of a busy server's stream.
    """
    name = msg.first[1]
    mode = RELEVANCE.get(name, 0)
    if mode == 1:
        return True
    raw = msg.raw
    if mode == 0:
        return name.endswith("Complete") or (name in _BUILDERS and "\r\nActionID: " in (raw or ""))
    if raw is None:
        return True
    if mode == 2:
        at = raw.find("\r\nVariable: ") + 12
        return at >= 12 and (raw.startswith("CTID_", at) or raw.startswith("AMDSTATUS\r\n", at))
    return "\r\nContext: ctid-" in raw
