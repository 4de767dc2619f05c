"""ctid.ami: the AMI wire format (messages, incremental parser), typed events, the sans-I/O session, and the
asyncio connection to Asterisk (`ctid.ami.client`, not imported here: this door loads no I/O)."""

from ctid.ami.events import AmiEvent, ChannelInfo, ChannelState, decode_event
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.ami.session import ActionCompleted, ActionFailed, AmiSession, ResyncSnapshot, SessionOutput

__all__ = [
    "ActionCompleted",
    "ActionFailed",
    "AmiEvent",
    "AmiMessage",
    "AmiParser",
    "AmiSession",
    "ChannelInfo",
    "ChannelState",
    "ResyncSnapshot",
    "SessionOutput",
    "decode_event",
]
