"""routing: ctid's ACD. Pure decisions over a snapshot of agents and waiting contacts (`decide`).

The door loads no I/O: routing.yaml is read by `routing.config`, the daemon's side is `routing.service`
and `routing.component`."""

from ctid.commands import Command, OfferCall
from routing.acd import Acd
from routing.agents import AgentBook, AgentRecord, AgentStateError
from routing.engine import decide, effective_priority, queue_order
from routing.model import (
    AgentStatus,
    AgentView,
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
    "AgentBook",
    "AgentRecord",
    "AgentStateError",
    "AgentStatus",
    "AgentView",
    "Command",
    "CustomerValue",
    "Lifecycle",
    "OfferCall",
    "PriorityRules",
    "QueuePolicy",
    "RoutingSnapshot",
    "Strategy",
    "Tier",
    "WaitingCall",
    "assign_tiers",
    "base_priority",
    "decide",
    "effective_priority",
    "queue_order",
    "value_score",
]
