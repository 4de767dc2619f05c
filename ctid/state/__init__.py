"""ctid.state: the sans-I/O model of channels, calls and agents, and the domain events it derives."""

from ctid.state import domain
from ctid.state.model import Agent, Call, CallState, CallStateModel, Channel, device_of

__all__ = ["Agent", "Call", "CallState", "CallStateModel", "Channel", "device_of", "domain"]
