"""The routing engine's inputs as plain immutable data: a snapshot in (its commands out are ctid.commands)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AgentStatus(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # ctid chose this agent and is ringing their phone
    ON_CALL = "on_call"
    ON_HOLD = "on_hold"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"
    LEAST_OCCUPIED = "least_occupied"
    SKILL_FIRST = "skill_first"
    BEST_FOR_TIER = "best_for_tier"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"  # Asterisk's fewestcalls: the agent who has answered the fewest calls


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """What routing needs to know of one queue (built from routing.yaml)."""

    name: str
    skills: tuple[tuple[str, int], ...] = ()  # required skill -> minimum level (1-10)
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout_s: float = 15.0
    wrap_up_s: float = 30.0
    # overflow by wait: after N seconds, accept agents with skill levels this much lower, or another
    # queue's agents too
    widen_after_s: float | None = None
    widen_by: int = 0
    add_queue_after_s: float | None = None
    add_queue: str = ""


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent as routing sees them at one instant."""

    agent_id: str
    device: str  # e.g. PJSIP/1001: what Dial() rings
    status: AgentStatus
    status_since: float
    skills: tuple[tuple[str, int], ...] = ()
    queues: tuple[str, ...] = ()
    occupancy: float = 0.0  # (talk + hold + wrap) / (that + ready) over the sliding window, 0..1
    quality: float = 0.0  # CSAT / first-call resolution blend, 0..1, for best_for_tier
    last_offered_seq: int = 0  # for round_robin: when this agent was last offered a call
    calls_handled: int = 0  # for fewest_calls: calls connected to this agent so far


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """A contact waiting in a queue."""

    linkedid: str
    channel: str  # the contact channel ctid redirects
    queue: str
    arrived_at: float  # kept across ring-no-answer (METRICS.md)
    tier: str = "C"
    base_priority: float = 0.0  # from the tier and boosts (open complaint, lost customer calling back)
    excluded_agents: tuple[str, ...] = ()  # agents who already let it ring out


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    queues: dict[str, QueuePolicy]
    agents: tuple[AgentView, ...]
    waiting: tuple[WaitingCall, ...]
    ageing_per_s: float = 1.0  # priority points gained per second of waiting
    head_start_after_s: float = 0.0  # how long a caller waits before their base priority counts
