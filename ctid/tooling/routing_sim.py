"""ctid's real state model and ACD routing pbxsim's simulated calls on one virtual clock, call by call.

Every AMI event the world emits goes through `decode_event` and `CallStateModel.apply` into domain
events for the `Acd`; its offers go back to the world as the AMI actions the daemon would send
(`ctid.commands.ami_actions`). No sockets and no wall clock, so a day of traffic runs in seconds and
the same seed gives the same callers, with the same patience and talk times, whatever the routing does.

Tooling, not product: the daemon never loads pbxsim.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import structlog

from ctid import dialplan
from ctid.agents import AgentBook, AgentRecord, AgentState
from ctid.ami.events import decode_event, relevant
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.commands import OfferCall, ami_actions
from ctid.customers import Tier
from ctid.state import CallStateModel
from ctid.state import domain as d
from pbxsim import AgiSession, Endpoint, PhonePlan, TrafficGenerator, TrafficProfile, World, call_center_site
from routing.acd import Acd, PriorityOf, flat_priority
from routing.model import QueuePolicy, Strategy
from routing.value import PriorityRules, base_priority

if TYPE_CHECKING:
    from pbxsim.channels import Channel

log = structlog.get_logger("ctid.tooling.routing_sim")

QUEUE = "inbound"
TIERS = ("A", "B", "C")
START = 1_795_424_400.0  # Monday 2026-11-23 09:00 UTC; the bench's traffic is flat, so only the log shows it
TICK_S = 1.0  # a routing pass at least once a simulated second, as the daemon's ticker does
DRAIN_LIMIT_S = 3600.0  # after the last arrival, how long to let the last callers finish at most


@dataclass(frozen=True, slots=True)
class Scenario:
    """The call center and its traffic: the same scenario and seed give the same callers."""

    agents: int = 100
    load: float = 0.95  # offered Erlangs per agent: arrivals x AHT / agents
    mix: tuple[float, float, float] = (0.10, 0.30, 0.60)  # share of callers in tiers A, B, C
    hours: float = 8.0
    aht_s: float = 240.0  # talk + hold + wrap-up (METRICS.md); hold happens within the talk time
    wrap_up_s: float = 20.0
    patience_mean_s: float = 120.0  # how long callers wait before hanging up: 5 s + exponential
    ring_s: float = 1.0  # agents' phones answer after this long (sim-phones' Wait(1))
    seed: int = 1

    def __post_init__(self) -> None:
        if self.agents < 1 or self.load <= 0 or self.hours <= 0 or self.aht_s <= self.wrap_up_s:
            raise ValueError("a scenario needs agents, a positive load and hours, and an AHT above wrap-up")
        if len(self.mix) != 3 or min(self.mix) < 0 or not math.isclose(sum(self.mix), 1.0):
            raise ValueError(f"the tier mix must be three shares summing to 1, not {self.mix}")

    @property
    def calls_per_hour(self) -> float:
        return self.load * self.agents * 3600.0 / self.aht_s

    def tier_of(self, number: str) -> str:
        """A caller's tier, drawn from the mix by the caller's number: the same under every policy."""
        draw = random.Random(f"ctid-sim-tier-{self.seed}-{number}").random()
        for tier, edge in zip(TIERS, itertools.accumulate(self.mix), strict=True):
            if draw < edge:
                return tier
        return TIERS[-1]


@dataclass(frozen=True, slots=True)
class Policy:
    """How callers are ordered (tier priorities with ageing, or arrival order) and agents chosen."""

    name: str
    strategy: Strategy
    rules: PriorityRules | None = None  # None: every caller alike, so the queue is first come first served

    def priority_of(self) -> PriorityOf:
        rules = self.rules
        if rules is None:
            return flat_priority
        return lambda tier, customer: base_priority(Tier(tier) if tier in TIERS else None, None, rules)

    @property
    def ageing_per_s(self) -> float:
        return 1.0 if self.rules is None else self.rules.ageing_per_s

    @property
    def head_start_after_s(self) -> float:
        return 0.0 if self.rules is None else self.rules.head_start_after_s


@dataclass(frozen=True, slots=True)
class SimResult:
    """A simulated day as the interaction log would hold it; `reports.kpi` makes the figures from it."""

    policy: str
    events: list[d.DomainEvent]  # every domain event, agents' state changes included, in order
    day: tuple[float, float]  # when the first caller could arrive and when arrivals stopped
    offers: int
    ami_events: int  # AMI events the world emitted


@dataclass
class RoutingSim:
    """One run: pbxsim's world with seeded traffic, ctid's state model and ACD, under one policy."""

    scenario: Scenario
    policy: Policy
    world: World = field(init=False)
    traffic: TrafficGenerator = field(init=False)
    model: CallStateModel = field(init=False)
    book: AgentBook = field(init=False)
    acd: Acd = field(init=False)
    events: list[d.DomainEvent] = field(init=False, default_factory=list)
    queued: set[str] = field(init=False, default_factory=set)  # contacts waiting or ringing an agent

    def __post_init__(self) -> None:
        s = self.scenario
        phones = [str(1001 + i) for i in range(s.agents)]
        self.world = World(seed=s.seed, start=START, endpoints=call_center_site(phones), agi_peer=self._ivr)
        profile = replace(
            TrafficProfile.flat(s.calls_per_hour),
            talk_mean=s.aht_s - s.wrap_up_s,
            patience_mean=s.patience_mean_s,
        )
        self.traffic = TrafficGenerator(self.world, profile)
        self.traffic.start()
        # phones answer after a fixed ring: the generator's own phone draws would shift every later
        # arrival by how calls were routed, and ring-no-answer pauses are not what is compared here
        self.world.phone_policy = self._phone_plan
        self.model = CallStateModel(history=None)
        self._parser = AmiParser(expect_banner=False)
        records = [AgentRecord(p, f"PJSIP/{p}", queues=(QUEUE,)) for p in phones]
        self.book = AgentBook(records, wrap_up_s=s.wrap_up_s)
        queue = QueuePolicy(QUEUE, strategy=self.policy.strategy, wrap_up_s=s.wrap_up_s)
        self.acd = Acd(
            {QUEUE: queue},
            self.book,
            priority_of=self.policy.priority_of(),
            ageing_per_s=self.policy.ageing_per_s,
            head_start_after_s=self.policy.head_start_after_s,
        )
        self._ready: set[str] = set()  # who routing could offer a call to
        self._wrap_ends: list[float] = []  # when agents' wrap-ups end (some may have ended early)
        for record in records:
            self.book.set_state(record.agent_id, AgentState.READY, self.world.now)
        self._take_changes()
        self._action_ids = itertools.count(1)
        self._offers = 0
        self._ami_events = 0

    # ---- the world's other ends -------------------------------------------------------------------

    def _ivr(self, session: AgiSession) -> None:
        """The IVR's part: each caller waits in the one queue, with a tier from the scenario's mix."""
        if session.script == dialplan.INBOUND_SCRIPT:
            tier = self.scenario.tier_of(session.channel.cid_num)
            session.command(f'SET VARIABLE {dialplan.QUEUE_VAR} "{QUEUE}"')
            session.command(f'SET VARIABLE {dialplan.TIER_VAR} "{tier}"')
        session.close()

    def _phone_plan(self, endpoint: Endpoint, ch: Channel) -> PhonePlan:
        plan = self.traffic.plans.get(ch.linkedid)
        if plan is None:
            return PhonePlan(self.scenario.ring_s)
        talk = plan.talk if plan.agent_hangs_up_first else None
        return PhonePlan(self.scenario.ring_s, talk, plan.hold_at, plan.hold_for)

    # ---- running ----------------------------------------------------------------------------------

    def run(self) -> SimResult:
        """The day's arrivals, then until every caller is answered or gone (at most DRAIN_LIMIT_S)."""
        day = (self.world.now, self.world.now + self.scenario.hours * 3600.0)
        self.run_until(day[1])
        self.traffic.stop()
        while self.queued and self.world.now < day[1] + DRAIN_LIMIT_S:
            self.run_until(min(day[1] + DRAIN_LIMIT_S, self.world.now + 60.0))
        log.debug("routing_sim_done", policy=self.policy.name, events=len(self.events), offers=self._offers)
        return SimResult(self.policy.name, self.events, day, self._offers, self._ami_events)

    def run_until(self, end: float) -> None:
        """Advance from event to event (and wrap-up end), routing after each batch and every TICK_S."""
        while self.world.now < end:
            due = [end, self.world.now + TICK_S]
            timer = self.world.next_timer_at()
            if timer is not None:
                due.append(timer)
            if self._wrap_ends:
                due.append(self._wrap_ends[0])
            self._feed(self.world.advance(min(due)))
            self._route()

    def _feed(self, messages: list[AmiMessage]) -> None:
        """The world's events as ctid reads them off the wire: bytes, parser, filter, typed event, model."""
        if not messages:
            return
        self._ami_events += len(messages)
        for msg in self._parser.feed(b"".join(m.to_bytes() for m in messages)):
            if not relevant(msg):
                continue
            event = decode_event(msg)
            for domain_event in self.model.apply(event, event.ts or self.world.now):
                self.acd.apply(domain_event, domain_event.at)
                self._record(domain_event)
                self._take_changes()  # right behind the call event that caused them, as the daemon logs

    def _record(self, event: d.DomainEvent) -> None:
        self.events.append(event)
        if isinstance(event, d.CallWaiting):
            self.queued.add(event.linkedid)
        elif isinstance(event, d.CallConnected | d.CallAbandoned | d.CallDeflected):
            self.queued.discard(event.linkedid)

    def _take_changes(self) -> None:
        """The agent book's state changes: into the log, and into who is ready and whose wrap-up ends."""
        for change in self.book.take_changes():
            self.events.append(change)
            if change.state == AgentState.READY:
                self._ready.add(change.agent)
            else:
                self._ready.discard(change.agent)
            wrap_until = self.book.agents[change.agent].wrap_until
            if change.state == AgentState.WRAP_UP and wrap_until is not None:
                heapq.heappush(self._wrap_ends, wrap_until)

    def _route(self) -> None:
        """A routing pass, skipped when it cannot match anyone: no caller waits, or no agent is ready."""
        now = self.world.now
        if self._wrap_ends and self._wrap_ends[0] <= now:
            while self._wrap_ends and self._wrap_ends[0] <= now:
                heapq.heappop(self._wrap_ends)
            self.book.tick(now)
            self._take_changes()
        if not self.acd.waiting or not self._ready:
            return
        for offer in self.acd.step(now):
            self._offers += 1
            self._send(offer, now)
        self._take_changes()

    def _send(self, offer: OfferCall, now: float) -> None:
        for name, headers in ami_actions(offer):
            action_id = f"sim-{next(self._action_ids)}"
            result = self.world.handle_action(
                AmiMessage([("Action", name), ("ActionID", action_id), *headers.items()])
            )
            self._feed(result.events)
            if any(reply.get("Response") != "Success" for reply in result.replies):
                self.acd.offer_failed(offer, now)
                return
