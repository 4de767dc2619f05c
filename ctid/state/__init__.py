"""ctid.state: the sans-I/O model of channels, calls and agents, and the domain events it derives."""

from ctid.state import domain
from ctid.state.model import (
    BUSY_DEVICE_STATES,
    Call,
    CallState,
    CallStateModel,
    Channel,
    Phone,
    PhoneStatus,
    device_of,
)

__all__ = [
    "BUSY_DEVICE_STATES",
    "Call",
    "CallState",
    "CallStateModel",
    "Channel",
    "Phone",
    "PhoneStatus",
    "device_of",
    "domain",
]
