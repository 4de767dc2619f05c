"""Seeded call traffic: customers calling in by hour of day, agents' phones, and outbound numbers' fates."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from pbxsim.channels import Channel
from pbxsim.site import Endpoint
from pbxsim.world import CalleeFate, PhonePlan, World

# calls per hour for each hour of the day (UTC of virtual time): quiet nights, morning and afternoon peaks
TYPICAL_DAY = (2, 1, 1, 1, 1, 2, 6, 20, 60, 90, 100, 95, 70, 80, 95, 90, 80, 60, 40, 25, 15, 10, 6, 3)
CALLER_NAMES = (
    "张伟",
    "王芳",
    "李娜",
    "刘洋",
    "陈静",
    "Zoë Ångström",
    "Đặng Thị Hoa",
    "María José Pérez",
    "Olga Petrova",
    "Ahmed Hassan",
    "Nguyễn Văn An",
    "Søren Nielsen",
    "John Smith",
    "Aiko Tanaka",
)


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """Everything the traffic generator draws from; the same profile and seed give the same calls."""

    hourly_calls: tuple[float, ...] = TYPICAL_DAY  # 24 values, calls per hour
    volume: float = 1.0  # multiplies hourly_calls
    dids: tuple[str, ...] = ("4000",)  # numbers customers dial (extensions of ctid-inbound)
    trunk: str = "trunk"  # the SIP endpoint they come in through
    patience_mean: float = 90.0  # seconds a caller waits before hanging up (exponential)
    patience_min: float = 5.0
    talk_mean: float = 180.0  # seconds of conversation (exponential above talk_min)
    talk_min: float = 15.0
    agent_hangs_up_first: float = 0.5  # probability; otherwise the customer ends the call
    hold_probability: float = 0.1  # the agent puts the customer on hold once during the call
    hold_mean: float = 20.0
    answer_probability: float = 0.95  # an agent's phone answers at all
    ring_min: float = 1.0  # seconds an agent's phone rings before it is answered
    ring_max: float = 5.0
    human_rate: float = 0.55  # outbound numbers (Local/NUMBER@sim-callees): a person answers
    machine_rate: float = 0.2  # an answering machine answers
    busy_rate: float = 0.1
    no_answer_rate: float = 0.15
    outbound_ring_min: float = 2.0
    outbound_ring_max: float = 15.0
    outbound_talk_mean: float = 120.0

    def __post_init__(self) -> None:
        if len(self.hourly_calls) != 24:
            raise ValueError("hourly_calls needs one value per hour of the day (24)")

    def rate_at(self, when: float) -> float:
        """Arrivals per second at virtual time `when`."""
        hour = datetime.fromtimestamp(when, UTC).hour
        return self.hourly_calls[hour] * self.volume / 3600.0

    @classmethod
    def flat(cls, calls_per_hour: float) -> TrafficProfile:
        """The same arrival rate all day (change other fields with dataclasses.replace)."""
        return cls(hourly_calls=(calls_per_hour,) * 24)


@dataclass(frozen=True, slots=True)
class CallerPlan:
    """What one customer will do, drawn when the call arrives."""

    channel: str
    arrived: float
    patience: float
    talk: float
    agent_hangs_up_first: bool
    hold_at: float | None
    hold_for: float


class TrafficGenerator:
    """Puts seeded traffic into a World: inbound callers, and the behaviour of phones and outbound numbers."""

    def __init__(self, world: World, profile: TrafficProfile, seed: int | None = None) -> None:
        self.world = world
        self.profile = profile
        self.rng = random.Random(f"pbxsim-traffic-{world.seed if seed is None else seed}")
        self.plans: dict[str, CallerPlan] = {}  # by the caller's linkedid
        self.arrivals = 0
        self._talking: set[str] = set()
        self._running = False

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self.world.phone_policy = self.phone_plan
        self.world.callee_policy = self.callee_fate
        self.world.connect_hooks.append(self._connected)
        self._schedule_next()

    def stop(self) -> None:
        self._running = False

    # ---- arrivals -------------------------------------------------------------------------------
    def _peak(self) -> float:
        return max(self.profile.hourly_calls) * self.profile.volume / 3600.0

    def _schedule_next(self) -> None:
        peak = self._peak()
        if peak <= 0 or not self._running:
            return
        gap = self.rng.expovariate(peak)
        self.world.schedule(gap, self._candidate)

    def _candidate(self) -> None:
        if not self._running:
            return
        if self.rng.random() * self._peak() < self.profile.rate_at(self.world.now):
            self._arrive()
        self._schedule_next()

    def _arrive(self) -> None:
        p, rng, w = self.profile, self.rng, self.world
        number = "13" + "".join(str(rng.randrange(10)) for _ in range(9))
        name = rng.choice(CALLER_NAMES)
        did = rng.choice(p.dids)
        patience = p.patience_min + rng.expovariate(1.0 / max(p.patience_mean - p.patience_min, 0.001))
        talk = p.talk_min + rng.expovariate(1.0 / max(p.talk_mean - p.talk_min, 0.001))
        agent_first = rng.random() < p.agent_hangs_up_first
        hold = rng.random() < p.hold_probability
        hold_at = talk * rng.uniform(0.2, 0.5) if hold else None
        hold_for = min(rng.expovariate(1.0 / p.hold_mean), talk * 0.4) if hold else 0.0
        ch = w.sip_call(p.trunk, did, cid_num=number, cid_name=name)
        plan = CallerPlan(ch.name, w.now, patience, talk, agent_first, hold_at, hold_for)
        self.plans[ch.linkedid] = plan
        self.arrivals += 1
        if self.arrivals % 1000 == 0:
            self._forget_finished()
        w.schedule(patience, lambda: self._patience_over(ch))

    def _forget_finished(self) -> None:
        live = {c.linkedid for c in self.world.channels.values()}
        for linkedid in [k for k in self.plans if k not in live]:
            del self.plans[linkedid]
            self._talking.discard(linkedid)

    def _patience_over(self, ch: Channel) -> None:
        if ch.alive and ch.linkedid not in self._talking:
            self.world.request_hangup(ch, 16)

    def _connected(self, ch: Channel, peer: Channel) -> None:
        plan = self.plans.get(ch.linkedid)
        if plan is None or ch.name != plan.channel or ch.linkedid in self._talking:
            return
        self._talking.add(ch.linkedid)
        if not plan.agent_hangs_up_first:
            self.world.schedule(plan.talk, lambda: self.world.request_hangup(ch, 16) if ch.alive else None)

    # ---- the other ends ---------------------------------------------------------------------------
    def phone_plan(self, endpoint: Endpoint, ch: Channel) -> PhonePlan:
        """An agent's phone rings: answered after a ring delay (or never); the call plan says the rest."""
        p, rng = self.profile, self.rng
        answers = rng.random() < p.answer_probability
        ring = rng.uniform(p.ring_min, p.ring_max)
        if not answers:
            return PhonePlan(None)
        plan = self.plans.get(ch.linkedid)
        if plan is None:
            return PhonePlan(ring)
        talk = plan.talk if plan.agent_hangs_up_first else None
        return PhonePlan(ring, talk, plan.hold_at, plan.hold_for)

    def callee_fate(self, number: str) -> CalleeFate:
        """An outbound number is dialed: a person, a machine, busy, or no answer, by the profile's rates."""
        p, rng = self.profile, self.rng
        weights = (p.human_rate, p.machine_rate, p.busy_rate, p.no_answer_rate)
        fate = rng.choices(("person", "machine", "busy", "noanswer"), weights)[0]
        ring = rng.uniform(p.outbound_ring_min, p.outbound_ring_max)
        talk = 10.0 + rng.expovariate(1.0 / max(p.outbound_talk_mean - 10.0, 0.001))
        return CalleeFate(fate, round(ring, 3), round(talk, 3))
