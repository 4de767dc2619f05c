"""The ACD: who waits where, agent states fed by call events, and `decide` turned into offers (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ctid import dialplan
from ctid.agents import AgentBook
from ctid.bus import ROUTING
from ctid.commands import OfferCall
from ctid.state import domain as d
from routing.engine import decide
from routing.model import QueuePolicy, RoutingSnapshot, WaitingCall

# (tier, customer id) -> base priority; the priority rules of routing.yaml
PriorityOf = Callable[[str, str], float]


def flat_priority(tier: str, customer: str) -> float:
    return 0.0


class Acd:
    """Inbound routing state of one site: waiting contacts and agents, fed by domain events."""

    def __init__(
        self,
        queues: dict[str, QueuePolicy],
        agents: AgentBook,
        *,
        priority_of: PriorityOf = flat_priority,
        ageing_per_s: float = 1.0,
        head_start_after_s: float = 0.0,
        default_tier: str = "C",
    ) -> None:
        self.queues = queues
        self.agents = agents
        self.priority_of = priority_of
        self.ageing_per_s = ageing_per_s
        self.head_start_after_s = head_start_after_s
        self.default_tier = default_tier
        self.waiting: dict[str, WaitingCall] = {}  # by linkedid
        self._channels: dict[str, str] = {}  # linkedid -> contact channel
        self._tiers: dict[str, tuple[str, str]] = {}  # linkedid -> (tier, customer)
        self._excluded: dict[str, tuple[str, ...]] = {}  # agents who let a call ring out
        self._queue_of: dict[str, str] = {}  # linkedid -> the queue it last waited in (its wrap-up)
        self._offered: dict[str, WaitingCall] = {}  # offers not yet confirmed by the agent's phone ringing

    def reconfigure(
        self,
        queues: dict[str, QueuePolicy],
        priority_of: PriorityOf,
        ageing_per_s: float,
        head_start_after_s: float,
    ) -> None:
        """A new routing.yaml applies at once, to callers already waiting too."""
        self.queues, self.priority_of = queues, priority_of
        self.ageing_per_s, self.head_start_after_s = ageing_per_s, head_start_after_s
        for linkedid, waiting in self.waiting.items():
            tier, customer = self._tiers.get(linkedid, (self.default_tier, ""))
            self.waiting[linkedid] = replace(waiting, base_priority=priority_of(tier, customer))

    def apply(self, event: d.DomainEvent, now: float) -> None:
        linkedid = event.linkedid
        queue = self.queues.get(self._queue_of.get(linkedid, ""))
        self.agents.apply(event, now, queue.wrap_up_s if queue is not None else None)
        if isinstance(event, d.CallArrived):
            self._channels[linkedid] = event.channel
        elif isinstance(event, d.CallVariable) and event.name in (dialplan.TIER_VAR, dialplan.CUSTOMER_VAR):
            tier, customer = self._tiers.get(linkedid, (self.default_tier, ""))
            self._tiers[linkedid] = (
                (event.value, customer) if event.name == dialplan.TIER_VAR else (tier, event.value)
            )
            waiting = self.waiting.get(linkedid)
            if waiting is not None:  # identified while already waiting: its priority changes now
                tier, customer = self._tiers[linkedid]
                self.waiting[linkedid] = replace(
                    waiting, tier=tier, base_priority=self.priority_of(tier, customer)
                )
        elif isinstance(event, d.CallWaiting):
            self._queue_of[linkedid] = event.queue
            tier, customer = self._tiers.get(linkedid, (self.default_tier, ""))
            self.waiting[linkedid] = WaitingCall(
                linkedid,
                self._channels.get(linkedid, ""),
                event.queue,
                event.arrived_at,
                tier=tier,
                base_priority=self.priority_of(tier, customer),
                excluded_agents=self._excluded.get(linkedid, ()) if event.requeued else (),
            )
        elif isinstance(event, d.AgentRinging | d.CallConnected | d.CallAbandoned | d.CallDeflected):
            self.waiting.pop(linkedid, None)
            self._offered.pop(linkedid, None)
        elif isinstance(event, d.RingNoAnswer):
            self._excluded[linkedid] = (*self._excluded.get(linkedid, ()), self._agent_id(event.agent))
        elif isinstance(event, d.CallEnded):
            for table in (
                self.waiting,
                self._channels,
                self._tiers,
                self._excluded,
                self._offered,
                self._queue_of,
            ):
                table.pop(linkedid, None)

    def _agent_id(self, device: str) -> str:
        agent = self.agents.by_device.get(device)
        return agent.agent_id if agent is not None else device

    def snapshot(self, now: float) -> RoutingSnapshot:
        return RoutingSnapshot(
            self.queues,
            self.agents.views(now, offerable_only=True),
            tuple(w for w in self.waiting.values() if w.channel),
            ageing_per_s=self.ageing_per_s,
            head_start_after_s=self.head_start_after_s,
        )

    def step(self, now: float) -> list[OfferCall]:
        """Expire wrap-ups, decide, and reserve the chosen agents; the caller sends the offers to Asterisk.

        An agent another component reserved first is not offered: the contact waits for the next pass."""
        self.agents.tick(now)
        if not self.waiting:
            return []
        offers = []
        for offer in decide(self.snapshot(now), now):
            if self.agents.reserve(offer.agent_id, ROUTING, offer.linkedid, now) is None:
                continue
            # back on CallWaiting if the phone rings out, or at once if the offer cannot be sent
            self._offered[offer.linkedid] = self.waiting.pop(offer.linkedid)
            offers.append(offer)
        return offers

    def offer_failed(self, offer: OfferCall, now: float) -> None:
        """Asterisk refused the offer (the caller left meanwhile, or the link dropped): undo it."""
        self.agents.release(offer.agent_id, offer.linkedid, now)
        waiting = self._offered.pop(offer.linkedid, None)
        if waiting is not None and offer.linkedid in self._channels:
            self.waiting[offer.linkedid] = waiting

    def take(self, linkedid: str) -> WaitingCall | None:
        """Stop routing a contact that a queue rule sends away; its next CallWaiting brings it back."""
        return self.waiting.pop(linkedid, None)
