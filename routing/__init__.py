"""routing: ctid's ACD. Pure decisions over a snapshot of agents and waiting contacts (`decide`)."""

from routing.engine import decide, effective_priority, queue_order
from routing.model import (
    AgentStatus,
    AgentView,
    Command,
    OfferCall,
    QueuePolicy,
    RoutingSnapshot,
    Strategy,
    WaitingCall,
)

__all__ = [
    "AgentStatus",
    "AgentView",
    "Command",
    "OfferCall",
    "QueuePolicy",
    "RoutingSnapshot",
    "Strategy",
    "WaitingCall",
    "decide",
    "effective_priority",
    "queue_order",
]
