"""routing: ctid's ACD. Pure decisions over a snapshot of agents and waiting contacts (`decide`)."""

from ctid.commands import Command, OfferCall
from routing.acd import Acd
from routing.config import RoutingConfig, is_open, load_routing, load_routing_checked, queue_policies
from routing.customers import CustomerRecord, import_csv, lookup_by_phone, recompute_tiers
from routing.engine import decide, effective_priority, queue_order
from routing.model import (
    QueuePolicy,
    RoutingSnapshot,
    Strategy,
    WaitingCall,
)
from routing.value import (
    CustomerValue,
    Lifecycle,
    PriorityRules,
    Tier,
    assign_tiers,
    base_priority,
    value_score,
)

__all__ = [
    "Acd",
    "Command",
    "CustomerRecord",
    "CustomerValue",
    "Lifecycle",
    "OfferCall",
    "PriorityRules",
    "QueuePolicy",
    "RoutingConfig",
    "RoutingSnapshot",
    "Strategy",
    "Tier",
    "WaitingCall",
    "assign_tiers",
    "base_priority",
    "decide",
    "effective_priority",
    "import_csv",
    "is_open",
    "load_routing",
    "load_routing_checked",
    "lookup_by_phone",
    "queue_order",
    "queue_policies",
    "recompute_tiers",
    "value_score",
]
