"""Customer value: lifecycle stage, a value score, A/B/C tiers, and the record a caller's lookup gives."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
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
    """A customer's worth and current situation: the figures routing's priorities are computed from."""

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


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """What routing and screen-pop get back for an identified caller."""

    id: str
    name: str
    tier: Tier | None
    lifecycle: Lifecycle
    vip: bool
    open_complaints: int
    value: CustomerValue
