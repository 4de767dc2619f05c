"""routing: ctid's ACD. Pure decisions over a snapshot of agents and waiting contacts (`decide`).

The door loads no I/O: routing.yaml is read by `routing.config`, the daemon's side is `routing.service`
and `routing.component`; agents and customers are ctid's (`ctid.agents`, `ctid.customers`)."""

from ctid.commands import Command, OfferCall
from routing.acd import Acd
from routing.engine import decide, effective_priority, queue_order
from routing.model import QueuePolicy, RoutingSnapshot, Strategy, WaitingCall
from routing.value import PriorityRules, base_priority

__all__ = [
    "Acd",
    "Command",
    "OfferCall",
    "PriorityRules",
    "QueuePolicy",
    "RoutingSnapshot",
    "Strategy",
    "WaitingCall",
    "base_priority",
    "decide",
    "effective_priority",
    "queue_order",
]
