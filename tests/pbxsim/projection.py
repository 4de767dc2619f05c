"""The call-event projection pbxsim's output is compared on: kept events, ids normalized, grouped per entity.

Asterisk emits events from several threads (each channel's own thread, the bridge, the originator), so the
global interleaving of two channels' events changes from run to run even for the same call: compare the
hangup order in inbound-ring-no-answer.ami.txt with blind-transfer.ami.txt, or where OriginateResponse
lands in inbound-answered against inbound-abandoned. What is stable is the order of the events that concern
one channel (or one bridge). So the projection keeps, for every channel and every bridge, the ordered list of
the kept events that name it; an event naming two channels (DialBegin, LocalBridge, BridgeEnter...) sits in
both lists, which pins the two channels' orders to each other at that point. OriginateResponse is kept per
ActionID. Each kept event carries all its header names in order, so a missing, extra or moved header shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ctid.ami.message import AmiMessage

KEPT_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "Newexten",
        "VarSet",
        "DialBegin",
        "DialState",
        "DialEnd",
        "LocalBridge",
        "BridgeCreate",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeMerge",
        "BridgeDestroy",
        "Hold",
        "Unhold",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
        "BlindTransfer",
        "AttendedTransfer",
        "OriginateResponse",
        "HangupRequest",
        "SoftHangupRequest",
        "Hangup",
    }
)
KEPT_VARIABLES = frozenset({"DIALSTATUS", "AMDSTATUS", "AMDCAUSE", "AGISTATUS"})

CHANNEL_KEYS = (
    "Channel",
    "DestChannel",
    "LocalOneChannel",
    "LocalTwoChannel",
    "TransfererChannel",
    "TransfereeChannel",
    "OrigTransfererChannel",
    "SecondTransfererChannel",
    "TransferTargetChannel",
)
BRIDGE_KEYS = (
    "BridgeUniqueid",
    "ToBridgeUniqueid",
    "FromBridgeUniqueid",
    "OrigBridgeUniqueid",
    "SecondBridgeUniqueid",
    "DestBridgeUniqueid",
)
# values compared besides the header names (ids are normalized first)
VALUE_KEYS = frozenset(
    {
        *CHANNEL_KEYS,
        *BRIDGE_KEYS,
        "ChannelStateDesc",
        "DestChannelStateDesc",
        "Context",
        "Exten",
        "Priority",
        "Application",
        "AppData",
        "Variable",
        "DialStatus",
        "DialString",
        "Cause",
        "Cause-txt",
        "BridgeNumChannels",
        "Class",
        "Response",
        "Reason",
        "Result",
        "IsExternal",
        "Extension",
        "DestType",
        "LocalOptimization",
        "Uniqueid",
        "Linkedid",
        "DestUniqueid",
        "DestLinkedid",
        "CallerIDNum",
        "CallerIDName",
    }
)
# strict mode: every call event except device/extension states and security or SIP registration notices
NOT_CALL_EVENTS = frozenset(
    {
        "DeviceStateChange",
        "ExtensionStatus",
        "FullyBooted",
        "SuccessfulAuth",
        "InvalidPassword",
        "RequestBadFormat",
        "ChallengeSent",
        "PeerStatus",
        "ContactStatus",
        "RTCPSent",
    }
)
STRICT_VALUE_KEYS = VALUE_KEYS | {
    "ConnectedLineNum",
    "ConnectedLineName",
    "Command",
    "ResultCode",
    "Result",
    "Digit",
}
# values that measure real time or come from the network
UNSTABLE_VARIABLES = (
    "RINGTIME",
    "ANSWEREDTIME",
    "DIALEDTIME",
    "PROGRESSTIME",
    "RTPAUDIOQOS",
    "BRIDGEPVTCALLID",
)
_SUFFIX = re.compile(r"^(?P<device>.+)-(?P<counter>[0-9a-f]{8})(?P<half>;[12])?$")


@dataclass
class Normalizer:
    """Maps channel names, uniqueids and bridge ids to stable tokens in order of first appearance."""

    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    uniqueids: dict[str, str] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)

    def channel(self, name: str) -> str:
        m = _SUFFIX.match(name)
        if not m:
            return name
        tech = name.split("/", 1)[0]
        key = (tech, m["counter"])
        if key not in self.counters:
            self.counters[key] = len([k for k in self.counters if k[0] == tech]) + 1
        return f"{m['device']}-#{self.counters[key]}{m['half'] or ''}"

    def learn(self, msg: AmiMessage) -> None:
        for prefix in ("", "Dest", "LocalOne", "LocalTwo"):
            chan, uid = msg.get(prefix + "Channel"), msg.get(prefix + "Uniqueid")
            if chan and uid and uid not in self.uniqueids:
                self.uniqueids[uid] = self.channel(chan)

    def uniqueid(self, uid: str) -> str:
        return self.uniqueids.get(uid, uid if uid == "<unknown>" else "uid?")

    def bridge(self, bid: str) -> str:
        if bid not in self.bridges:
            self.bridges[bid] = f"bridge#{len(self.bridges) + 1}"
        return self.bridges[bid]


@dataclass(frozen=True)
class Projected:
    event: str
    headers: tuple[str, ...]  # every header name, in order
    values: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return f"{self.event} " + " ".join(f"{k}={v}" for k, v in self.values)


def is_kept(msg: AmiMessage, strict: bool = False) -> bool:
    if not msg.is_event or "Timestamp" not in msg:
        return False
    if strict:
        return msg.name not in NOT_CALL_EVENTS
    if msg.name not in KEPT_EVENTS:
        return False
    if msg.name == "VarSet":
        var = msg.get("Variable", "")
        return var.startswith("CTID_") or var in KEPT_VARIABLES
    return True


def _value(norm: Normalizer, key: str, value: str) -> str:
    if key.endswith("Channel") or key == "Channel":
        return norm.channel(value)
    if key in BRIDGE_KEYS:
        return norm.bridge(value)
    if key.endswith("Uniqueid") or key.endswith("Linkedid"):
        return norm.uniqueid(value)
    return value


def project(messages: Iterable[AmiMessage], strict: bool = False) -> dict[str, list[Projected]]:
    """Kept events grouped per entity (channel token, bridge token, or originate:ActionID), in order.

    `strict` keeps every call event (all VarSets, NewCallerid, AGIExec..., DTMF) and compares more values.
    """
    norm = Normalizer()
    out: dict[str, list[Projected]] = {}
    keys = STRICT_VALUE_KEYS if strict else VALUE_KEYS
    for msg in messages:
        if not msg.is_event:
            continue
        norm.learn(msg)
        if not is_kept(msg, strict):
            continue
        values = tuple((k, _value(norm, k, v)) for k, v in msg.fields[1:] if k in keys)
        if strict and msg.name == "VarSet" and not msg.get("Variable", "").startswith(UNSTABLE_VARIABLES):
            value = msg.get("Value", "")
            values += (("Value", norm.channel(value) if _SUFFIX.match(value) else value),)
        item = Projected(msg.name, tuple(k for k, _ in msg.fields), values)
        if msg.name == "OriginateResponse":
            entities = [f"originate:{msg.get('ActionID')}"]
        else:
            entities = [norm.channel(msg[k]) for k in CHANNEL_KEYS if k in msg]
            entities += [norm.bridge(msg[k]) for k in BRIDGE_KEYS if k in msg]
        for entity in dict.fromkeys(entities):
            out.setdefault(entity, []).append(item)
    return out


def describe_difference(expected: dict[str, list[Projected]], actual: dict[str, list[Projected]]) -> str:
    """A readable account of the first differences, entity by entity."""
    lines: list[str] = []
    for entity in sorted(set(expected) | set(actual)):
        exp, act = expected.get(entity, []), actual.get(entity, [])
        if exp == act:
            continue
        lines.append(f"== {entity}: expected {len(exp)} events, got {len(act)}")
        for i in range(max(len(exp), len(act))):
            e = exp[i] if i < len(exp) else None
            a = act[i] if i < len(act) else None
            if e == a:
                lines.append(f"   {i:3} = {e}")
                continue
            lines.append(f"   {i:3} - {e}")
            lines.append(f"   {i:3} + {a}")
            if e is not None and a is not None and e.event == a.event and e.headers != a.headers:
                lines.append(f"         headers {list(e.headers)}")
                lines.append(f"            got {list(a.headers)}")
    return "\n".join(lines)
