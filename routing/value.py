"""The queue priority a caller's value tier and situation earn (`PriorityRules`, `base_priority`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ctid.customers import CustomerValue, Lifecycle, Tier


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
