"""The routing engine's inputs as plain immutable data: a snapshot in (its commands out are ctid.commands)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ctid.agents import AgentView


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
