"""screenpop: the agent's screen pop, a pure pop book (`screenpop.pops`) fed by the bus, and the desktop."""

from screenpop.pops import (
    Pop,
    PopBook,
    PopClosed,
    PopEnded,
    PopMessage,
    PopOpened,
    PopUpdated,
    Prefetch,
    TransferNote,
    crm_url,
    pop_message,
)

__all__ = [
    "Pop",
    "PopBook",
    "PopClosed",
    "PopEnded",
    "PopMessage",
    "PopOpened",
    "PopUpdated",
    "Prefetch",
    "TransferNote",
    "crm_url",
    "pop_message",
]
