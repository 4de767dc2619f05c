"""Customer value for inbound routing: a value score, A/B/C tiers, and the queue priority they earn."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


class Lifecycle(enum.StrEnum):
    """Where a customer stands in the relationship, from first contact to lost."""

    SUSPECT = "suspect"
    PROSPECT = "prospect"
    FIRST_TIME = "first_time"
    REPEAT = "repeat"
    CLIENT = "client"
    ADVOCATE = "advocate"
    LOST = "lost"


class Tier(enum.StrEnum):
    """Value tier: A the most valuable few, B the next band, C everyone else."""

    A = "A"
    B = "B"
    C = "C"


@dataclass(frozen=True, slots=True)
class CustomerValue:
    """What routing knows about a caller's worth and current situation."""

    revenue_12m: Decimal
    tenure_years: float
    cost_to_serve: Decimal
    open_complaints: int
    lifecycle: Lifecycle
    vip: bool


@dataclass(frozen=True, slots=True)
class ValueWeights:
    """How much each money-or-loyalty figure counts in `value_score`.

    The score is a margin in currency units: revenue minus cost to serve, plus a loyalty credit per
    year of tenure. `cost` is a positive weight that is subtracted.
    """

    revenue: float = 1.0
    tenure: float = 100.0
    cost: float = 1.0

    def __post_init__(self) -> None:
        if min(self.revenue, self.tenure, self.cost) < 0:
            raise ValueError("value weights must not be negative (cost is subtracted already)")


DEFAULT_WEIGHTS = ValueWeights()


def value_score(v: CustomerValue, weights: ValueWeights = DEFAULT_WEIGHTS) -> float:
    """A customer's value: weighted revenue plus weighted tenure minus weighted cost to serve."""
    return (
        weights.revenue * float(v.revenue_12m)
        + weights.tenure * v.tenure_years
        - weights.cost * float(v.cost_to_serve)
    )


# Guards the tier counts against float error: 1000 * 0.15 must give 150, not 149.
_EPSILON = 1e-9


def tier_counts(n: int, top_a: float = 0.05, top_b: float = 0.15) -> tuple[int, int]:
    """How many of `n` customers get tier A and tier B.

    A is floor(n * top_a) and A+B is floor(n * (top_a + top_b)), so the bands never round up past
    their share - except that a non-empty population with top_a > 0 always has at least one A
    customer, so a small book still has someone to put first.
    """
    if not (0.0 <= top_a <= 1.0 and 0.0 <= top_b <= 1.0 and top_a + top_b <= 1.0 + _EPSILON):
        raise ValueError(f"tier shares must lie in [0, 1] and sum to at most 1: {top_a=}, {top_b=}")
    if n <= 0:
        return 0, 0
    n_a = math.floor(n * top_a + _EPSILON)
    if top_a > 0:
        n_a = max(n_a, 1)
    n_ab = min(n, max(n_a, math.floor(n * (top_a + top_b) + _EPSILON)))
    return n_a, n_ab - n_a


def assign_tiers(scores: Mapping[str, float], top_a: float = 0.05, top_b: float = 0.15) -> dict[str, Tier]:
    """Tier every customer id by score: the top `top_a` share is A, the next `top_b` share B, the rest C.

    Customers are ranked by score, highest first; equal scores rank by id ascending, so the result
    never depends on the mapping's order. Band sizes follow `tier_counts`.
    """
    n_a, n_b = tier_counts(len(scores), top_a, top_b)
    ranked = sorted(scores, key=lambda cid: (-scores[cid], cid))
    tiers: dict[str, Tier] = {}
    for rank, cid in enumerate(ranked):
        tiers[cid] = Tier.A if rank < n_a else Tier.B if rank < n_a + n_b else Tier.C
    return tiers


def _default_base() -> dict[Tier, float]:
    return {Tier.A: 100.0, Tier.B: 50.0, Tier.C: 10.0}


@dataclass(frozen=True, slots=True)
class PriorityRules:
    """How tier, caller situation and waiting time turn into a queue priority (higher is served first).

    The defaults put any caller with an open complaint (+200) or a VIP (+150) ahead of every plain
    A caller, lift a lost customer calling back (+60) above a plain B caller, and add half a point
    per second waited so a C caller overtakes a fresh A caller after (100 - 10) / 0.5 = 180 s.
    Callers we cannot identify, and customers not yet tiered, get `unknown_tier`.

    A caller's base priority (tier and boosts) counts once they have waited `head_start_after_s`;
    until then they keep their place by arrival. Callers hardly ever hang up in their first seconds
    (METRICS.md's short abandons), while someone who has waited longer may hang up at any moment: a
    caller who has only just arrived loses nothing by letting them go first, and abandons do not grow.
    """

    base: Mapping[Tier, float] = field(default_factory=_default_base)
    open_complaint_boost: float = 200.0
    lost_customer_boost: float = 60.0
    vip_boost: float = 150.0
    ageing_per_s: float = 0.5
    head_start_after_s: float = 5.0
    unknown_tier: Tier = Tier.C

    def __post_init__(self) -> None:
        missing = [t for t in Tier if t not in self.base]
        if missing:
            raise ValueError(f"priority rules lack a base for tier(s) {', '.join(missing)}")
        if self.ageing_per_s < 0:
            raise ValueError("ageing_per_s must not be negative")
        if self.head_start_after_s < 0:
            raise ValueError("head_start_after_s must not be negative")


def base_priority(tier: Tier | None, value: CustomerValue | None, rules: PriorityRules) -> float:
    """The priority a caller starts the queue with.

    `tier` None (unknown caller or not yet tiered) means `rules.unknown_tier`; `value` None means
    we know nothing about the caller's situation, so no boost applies. The complaint boost is
    applied once, however many complaints are open.
    """
    priority = rules.base[rules.unknown_tier if tier is None else tier]
    if value is None:
        return priority
    if value.open_complaints > 0:
        priority += rules.open_complaint_boost
    if value.vip:
        priority += rules.vip_boost
    if value.lifecycle is Lifecycle.LOST:
        priority += rules.lost_customer_boost
    return priority
