"""ivr: ctid's FastAGI server for the dialplan contract's AGI steps (identify, outbound AMD, survey).

The door loads no I/O: the FastAGI server is `ivr.fastagi`, the contract's scripts `ivr.server`, the
daemon's side `ivr.component`."""

from ctid.customers import Identification

__all__ = ["Identification"]
