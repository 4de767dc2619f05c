"""routing: ctid's ACD. Pure decisions over a snapshot of agents and waiting contacts (`decide`)."""

from ctid.commands import Command, OfferCall
from routing.acd import Acd
from routing.config import RoutingConfig, is_open, load_routing, load_routing_checked, queue_policies
from routing.engine import decide, effective_priority, queue_order
from routing.model import (
    QueuePolicy,
    RoutingSnapshot,
    Strategy,
    WaitingCall,
)
from routing.value import PriorityRules, base_priority

__all__ = [
    "Acd",
    "Command",
    "OfferCall",
    "PriorityRules",
    "QueuePolicy",
    "RoutingConfig",
    "RoutingSnapshot",
    "Strategy",
    "WaitingCall",
    "base_priority",
    "decide",
    "effective_priority",
    "is_open",
    "load_routing",
    "load_routing_checked",
    "queue_order",
    "queue_policies",
]
