"""ctid.ami: the AMI wire format (messages, incremental parser), typed events, the connection to Asterisk."""

from ctid.ami.events import AmiEvent, ChannelInfo, ChannelState, decode_event
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser

__all__ = ["AmiEvent", "AmiMessage", "AmiParser", "ChannelInfo", "ChannelState", "decode_event"]
