"""ivr: ctid's FastAGI server for the dialplan contract's AGI steps (identify, outbound AMD, survey)."""

from ivr.server import AgiSession, Identification, IvrServer, agi_quote, default_identify

__all__ = ["AgiSession", "Identification", "IvrServer", "agi_quote", "default_identify"]
