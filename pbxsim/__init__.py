"""pbxsim: a fake Asterisk in virtual time (AMI server, FastAGI client, seeded call traffic) for ctid."""

from pbxsim.agi import AgiSession, scripted_peer, unreachable_peer
from pbxsim.dialplan import REFERENCE_DIALPLAN, Dialplan
from pbxsim.server import PbxSimServer
from pbxsim.site import Endpoint, agent_phones, call_center_site, parse_agents, reference_site
from pbxsim.traffic import TrafficGenerator, TrafficProfile
from pbxsim.world import (
    ASTERISK_VERSION,
    DEFAULT_START,
    ActionResult,
    CalleeFate,
    ChannelInfo,
    PhonePlan,
    World,
    WorldClock,
)

__all__ = [
    "ASTERISK_VERSION",
    "DEFAULT_START",
    "REFERENCE_DIALPLAN",
    "ActionResult",
    "AgiSession",
    "CalleeFate",
    "ChannelInfo",
    "Dialplan",
    "Endpoint",
    "PbxSimServer",
    "PhonePlan",
    "TrafficGenerator",
    "TrafficProfile",
    "World",
    "WorldClock",
    "agent_phones",
    "call_center_site",
    "parse_agents",
    "reference_site",
    "scripted_peer",
    "unreachable_peer",
]
