"""The routing decision: waiting contacts in priority order, each to the best ready agent of its queue.

Pure: `decide(snapshot, now)` reads an immutable snapshot and returns commands; nothing here does I/O.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from operator import itemgetter

from ctid.agents import AgentState, AgentView
from ctid.commands import OfferCall
from routing.model import (
    QueuePolicy,
    RoutingSnapshot,
    Strategy,
    WaitingCall,
)

SortKey = Callable[[AgentView], tuple[float | str, ...]]


def effective_priority(
    call: WaitingCall, now: float, ageing_per_s: float, head_start_after_s: float = 0.0
) -> float:
    """Ageing, so no tier starves, plus the base priority once the caller has waited `head_start_after_s`.

    Until then a caller keeps their place by arrival: with every base at or above zero, nobody who has
    waited that long is overtaken by someone who has not (`routing.value.PriorityRules`).
    """
    waited = max(0.0, now - call.arrived_at)
    head_start = call.base_priority if waited >= head_start_after_s else 0.0
    return head_start + ageing_per_s * waited


def queue_order(snapshot: RoutingSnapshot, now: float) -> list[WaitingCall]:
    """Waiting contacts, most urgent first; ties go to the longest waiting, then by call id."""
    ageing, after = snapshot.ageing_per_s, snapshot.head_start_after_s
    return sorted(
        snapshot.waiting,
        key=lambda c: (-effective_priority(c, now, ageing, after), c.arrived_at, c.linkedid),
    )


def qualifies(agent: AgentView, queue: QueuePolicy, widen_by: int) -> bool:
    """The agent has every skill the queue requires, at its minimum level less `widen_by`."""
    if not queue.skills:
        return True
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
    if strategy is Strategy.FEWEST_CALLS:
        return lambda a: (a.calls_handled, a.status_since, a.agent_id)  # ties: the longest idle
    return lambda a: (a.status_since, a.agent_id)  # longest idle


def _key_tier(strategy: Strategy, tier: str) -> str:
    """The part of a caller's tier that changes `agent_key`: only best_for_tier treats A differently."""
    return "A" if strategy is Strategy.BEST_FOR_TIER and tier == "A" else ""


class _Ranked:
    """One pool's ready, qualified agents ranked by a strategy's key, handed out best first.

    Agents taken by earlier calls are skipped for good (`start` moves past them), so a pass over all
    waiting calls walks each ranking about once instead of scanning the pool for every call.
    """

    __slots__ = ("entries", "start")

    def __init__(self, entries: list[tuple[tuple[float | str, ...], AgentView]]) -> None:
        self.entries = entries
        self.start = 0

    def best(
        self, taken: set[str], excluded: tuple[str, ...]
    ) -> tuple[tuple[float | str, ...], AgentView] | None:
        entries, index = self.entries, self.start
        while index < len(entries) and entries[index][1].agent_id in taken:
            index += 1
        self.start = index
        for entry in itertools.islice(entries, index, None):
            agent_id = entry[1].agent_id
            if agent_id not in taken and agent_id not in excluded:
                return entry
        return None


class _Rankings:
    """Rankings built on first use, per (queue, pool, widening, tier as the key sees it)."""

    def __init__(self, ready: dict[str, list[AgentView]]) -> None:
        self.ready = ready  # queue name -> its ready agents
        self.qualified: dict[tuple[str, str, int], list[AgentView]] = {}
        self.built: dict[tuple[str, str, int, str], _Ranked] = {}

    def ranked(self, queue: QueuePolicy, pool: str, widen: int, tier: str) -> _Ranked:
        tier = _key_tier(queue.strategy, tier)
        found = self.built.get((queue.name, pool, widen, tier))
        if found is None:
            agents = self.qualified.get((queue.name, pool, widen))
            if agents is None:
                agents = [a for a in self.ready.get(pool, ()) if qualifies(a, queue, widen)]
                self.qualified[(queue.name, pool, widen)] = agents
            key = agent_key(queue.strategy, queue, tier)
            entries = [(key(a), a) for a in agents]
            entries.sort(key=itemgetter(0))  # stable: equal keys keep the snapshot's order, as min() did
            found = self.built[(queue.name, pool, widen, tier)] = _Ranked(entries)
        return found

    def could_serve(self, queue: QueuePolicy, taken: set[str]) -> bool:
        """Whether any free agent could take one of the queue's calls, at its widest overflow step."""
        widest = queue.widen_by if queue.widen_after_s is not None else 0
        pools = [queue.name, queue.add_queue] if queue.add_queue_after_s is not None else [queue.name]
        return any(self.ranked(queue, pool, widest, "").best(taken, ()) is not None for pool in pools)


# a waiting call in its queue's line: most urgent first, then the longest waiting, then by call id
_Entry = tuple[float, float, str, int, WaitingCall]


def _lines(
    snapshot: RoutingSnapshot, now: float, ready: dict[str, list[AgentView]]
) -> dict[str, list[_Entry]]:
    """Each queue's waiting calls in `queue_order`, as heaps, for the queues someone ready could serve."""
    ageing, after = snapshot.ageing_per_s, snapshot.head_start_after_s
    queues = snapshot.queues
    served = {
        name
        for name, queue in queues.items()
        if name in ready or (queue.add_queue and queue.add_queue in ready)
    }
    lines: dict[str, list[_Entry]] = {name: [] for name in served}
    line_of = lines.get
    for index, call in enumerate(snapshot.waiting):
        line = line_of(call.queue)
        if line is not None:
            waited = now - call.arrived_at
            if waited < 0.0:
                waited = 0.0
            # -effective_priority
            key = -ageing * waited - (call.base_priority if waited >= after else 0.0)
            line.append((key, call.arrived_at, call.linkedid, index, call))
    for line in lines.values():
        heapq.heapify(line)
    return {name: line for name, line in lines.items() if line}


def decide(snapshot: RoutingSnapshot, now: float) -> list[OfferCall]:
    """One offer per waiting contact that has a ready, qualified agent; no agent is offered twice.

    Each contact, most urgent first across all queues, gets the best agent by its queue's strategy among
    those still free. Fast enough for ten thousand agents and thousands of waiting contacts: agents are
    ranked once per queue (not per contact), each queue's line is a heap merged with the others', and a
    queue whose agents are all taken drops out without its remaining contacts being looked at.
    """
    status = AgentState.READY  # looked up once: an enum member costs a class lookup each time
    available = [a for a in snapshot.agents if a.status is status]
    ready: dict[str, list[AgentView]] = {}
    for agent in available:
        for name in agent.queues:
            ready.setdefault(name, []).append(agent)
    if not ready:
        return []
    ready_ids = {a.agent_id for a in available}
    lines = _lines(snapshot, now, ready)
    fronts = [(line[0], name) for name, line in lines.items()]
    heapq.heapify(fronts)
    rankings = _Rankings(ready)
    taken: set[str] = set()
    offers: list[OfferCall] = []
    while fronts and len(taken) < len(ready_ids):
        _, name = heapq.heappop(fronts)
        line = lines[name]
        entry = heapq.heappop(line)
        call = entry[-1]
        queue = snapshot.queues[name]
        best = _best_for(call, queue, now, rankings, taken)
        if best is not None:
            taken.add(best.agent_id)
            priority = -entry[0]
            offers.append(
                OfferCall(
                    call.linkedid,
                    call.channel,
                    best.agent_id,
                    best.device,
                    queue.ring_timeout_s,
                    name,
                    priority,
                )
            )
        # a queue whose agents are all taken drops out; checked only when this call found nobody
        if line and (best is not None or rankings.could_serve(queue, taken)):
            heapq.heappush(fronts, (line[0], name))
    return offers


def _best_for(
    call: WaitingCall, queue: QueuePolicy, now: float, rankings: _Rankings, taken: set[str]
) -> AgentView | None:
    """The call's best free agent: its queue's, or also another queue's once an overflow step allows."""
    waited = now - call.arrived_at
    widen = queue.widen_by if queue.widen_after_s is not None and waited >= queue.widen_after_s else 0
    found = rankings.ranked(queue, queue.name, widen, call.tier).best(taken, call.excluded_agents)
    if queue.add_queue and queue.add_queue_after_s is not None and waited >= queue.add_queue_after_s:
        helper = rankings.ranked(queue, queue.add_queue, widen, call.tier).best(taken, call.excluded_agents)
        if helper is not None and (found is None or helper[0] < found[0]):
            found = helper
    return found[1] if found is not None else None
