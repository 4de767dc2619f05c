"""ivr: ctid's FastAGI server for the dialplan contract's AGI steps (identify, outbound AMD, survey)."""

from ctid.customers import Identification
from ivr.fastagi import AgiLimits, AgiReply, AgiSession, AgiSessionEnded, FastAgiServer, agi_quote
from ivr.server import IvrServer, default_identify

__all__ = [
    "AgiLimits",
    "AgiReply",
    "AgiSession",
    "AgiSessionEnded",
    "FastAgiServer",
    "Identification",
    "IvrServer",
    "agi_quote",
    "default_identify",
]
