"""The routing decision: waiting contacts in priority order, each to the best ready agent of its queue.

Pure: `decide(snapshot, now)` reads an immutable snapshot and returns commands; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from routing.model import (
    AgentStatus,
    AgentView,
    OfferCall,
    QueuePolicy,
    RoutingSnapshot,
    Strategy,
    WaitingCall,
)

SortKey = Callable[[AgentView], tuple[float | str, ...]]


def effective_priority(call: WaitingCall, now: float, ageing_per_s: float) -> float:
    """Base priority plus ageing: every second waited adds `ageing_per_s`, so no tier starves."""
    return call.base_priority + ageing_per_s * max(0.0, now - call.arrived_at)


def queue_order(snapshot: RoutingSnapshot, now: float) -> list[WaitingCall]:
    """Waiting contacts, most urgent first; ties go to the longest waiting, then by call id."""
    return sorted(
        snapshot.waiting,
        key=lambda c: (-effective_priority(c, now, snapshot.ageing_per_s), c.arrived_at, c.linkedid),
    )


def qualifies(agent: AgentView, queue: QueuePolicy, widen_by: int) -> bool:
    """The agent has every skill the queue requires, at its minimum level less `widen_by`."""
    levels = dict(agent.skills)
    return all(levels.get(skill, 0) >= max(1, minimum - widen_by) for skill, minimum in queue.skills)


def _skill_total(agent: AgentView, queue: QueuePolicy) -> int:
    levels = dict(agent.skills)
    return sum(levels.get(skill, 0) for skill, _ in queue.skills)


def agent_key(strategy: Strategy, queue: QueuePolicy, tier: str) -> SortKey:
    """Sort key of candidate agents (smallest first) for a queue's strategy; ties end on the agent id."""
    if strategy is Strategy.LEAST_OCCUPIED or (strategy is Strategy.BEST_FOR_TIER and tier != "A"):
        return lambda a: (a.occupancy, a.status_since, a.agent_id)
    if strategy is Strategy.BEST_FOR_TIER:
        return lambda a: (-a.quality, a.occupancy, a.status_since, a.agent_id)
    if strategy is Strategy.SKILL_FIRST:
        return lambda a: (-_skill_total(a, queue), a.status_since, a.agent_id)
    if strategy is Strategy.ROUND_ROBIN:
        return lambda a: (a.last_offered_seq, a.agent_id)
    return lambda a: (a.status_since, a.agent_id)  # longest idle


def decide(snapshot: RoutingSnapshot, now: float) -> list[OfferCall]:
    """One offer per waiting contact that has a ready, qualified agent; no agent is offered twice."""
    by_queue: dict[str, list[AgentView]] = {}
    for agent in snapshot.agents:
        if agent.status is AgentStatus.READY:
            for name in agent.queues:
                by_queue.setdefault(name, []).append(agent)
    if not by_queue:
        return []
    taken: set[str] = set()
    offers: list[OfferCall] = []
    for call in queue_order(snapshot, now):
        queue = snapshot.queues.get(call.queue)
        if queue is None:
            continue
        waited = now - call.arrived_at
        widen = queue.widen_by if queue.widen_after_s is not None and waited >= queue.widen_after_s else 0
        pools: Iterable[AgentView] = by_queue.get(queue.name, ())
        if queue.add_queue and queue.add_queue_after_s is not None and waited >= queue.add_queue_after_s:
            pools = [*pools, *by_queue.get(queue.add_queue, ())]
        candidates = [
            a
            for a in pools
            if a.agent_id not in taken
            and a.agent_id not in call.excluded_agents
            and qualifies(a, queue, widen)
        ]
        if not candidates:
            continue
        best = min(candidates, key=agent_key(queue.strategy, queue, call.tier))
        taken.add(best.agent_id)
        offers.append(
            OfferCall(
                call.linkedid,
                call.channel,
                best.agent_id,
                best.device,
                queue.ring_timeout_s,
                queue.name,
                effective_priority(call, now, snapshot.ageing_per_s),
            )
        )
        if len(taken) == len(snapshot.agents):
            break
    return offers
