"""Channels and bridges of the simulated PBX, and the AMI header blocks that describe them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ctid.ami.events import UNKNOWN as UNKNOWN  # one definition for ctid and pbxsim
from ctid.ami.events import ChannelState as ChannelState

if TYPE_CHECKING:
    from pbxsim.site import Endpoint
    from pbxsim.world import BridgeOwner

CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    27: "Destination out of order",
    31: "Normal, unspecified",
    32: "Normal, unspecified",
    34: "Circuit/channel congestion",
}


class Block:
    """What a channel's dialplan is waiting on inside an application (a timer, music, a call, FastAGI)."""

    def stop(self, reason: str) -> None:
        """The wait ends early: the channel hangs up ("hangup") or is sent elsewhere ("redirect")."""

    def redirect(self, context: str, exten: str, priority: int) -> bool:
        """Handle an async goto entirely (True), or leave it to the default stop-and-jump (False)."""
        return False


class Leg:
    """Whoever dials a channel (Dial, Originate, a transfer) hears how the call progresses."""

    def ringing(self, channel: Channel) -> None:
        """The far end rings."""

    def answered(self, channel: Channel) -> None:
        """The far end answered."""

    def busy(self, channel: Channel) -> None:
        """The far end is busy."""

    def gone(self, channel: Channel) -> None:
        """The dialed channel hung up before answering."""


@dataclass(eq=False)
class Channel:
    """One channel: its identity, caller ids, dialplan position, variables and where it is connected."""

    name: str
    uniqueid: str
    linkedid: str
    tech: str
    created: float
    state: ChannelState = ChannelState.DOWN
    cid_num: str = UNKNOWN
    cid_name: str = UNKNOWN
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN
    context: str = ""
    exten: str = ""
    priority: int = 1
    app: str = ""
    appdata: str = ""
    dnid: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    answered: float | None = None
    alive: bool = True
    pbx: bool = False  # runs dialplan of its own
    block: Block | None = None
    skip_newexten: bool = False  # an async goto already announced this priority
    partner: Channel | None = None  # the other half of a Local channel pair
    half: int = 0  # 1 or 2 for Local channels
    bridge: Bridge | None = None
    hangup_cause: int = 0
    leg: Leg | None = None  # set while this channel is an outgoing leg being dialed
    endpoint: Endpoint | None = None
    callid: str = ""  # the SIP Call-ID of a PJSIP channel
    on_hold: bool = False
    run_pending: bool = False
    hangup_requested: bool = False
    hanging_up: bool = False
    pending_cid: tuple[str, str] | None = None

    @property
    def device(self) -> str:
        """The channel name less its `-xxxxxxxx` / `;N` suffix, as ctid identifies agents' devices."""
        return self.name.rsplit("-", 1)[0]

    def fields(self, prefix: str = "") -> list[tuple[str, str]]:
        """The standard channel snapshot block of an AMI event, with an optional key prefix."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(int(self.state))),
            (f"{prefix}ChannelStateDesc", self.state.desc),
            (f"{prefix}CallerIDNum", self.cid_num),
            (f"{prefix}CallerIDName", self.cid_name),
            (f"{prefix}ConnectedLineNum", self.conn_num),
            (f"{prefix}ConnectedLineName", self.conn_name),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]


@dataclass(eq=False)
class Bridge:
    """A basic two-party (or more) mixing bridge."""

    uniqueid: str
    channels: list[Channel] = field(default_factory=list)
    owner: BridgeOwner | None = None

    def fields(self, prefix: str = "", count: int | None = None) -> list[tuple[str, str]]:
        return [
            (f"{prefix}BridgeUniqueid", self.uniqueid),
            (f"{prefix}BridgeType", "basic"),
            (f"{prefix}BridgeTechnology", "simple_bridge"),
            (f"{prefix}BridgeCreator", UNKNOWN),
            (f"{prefix}BridgeName", UNKNOWN),
            (f"{prefix}BridgeNumChannels", str(len(self.channels) if count is None else count)),
            (f"{prefix}BridgeVideoSourceMode", "none"),
        ]

    def peer_of(self, channel: Channel) -> Channel | None:
        return next((c for c in self.channels if c is not channel), None)
