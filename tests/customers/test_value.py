"""Customer value: scores and A/B/C tiers."""

import random
from decimal import Decimal

import pytest

from ctid.customers import (
    CustomerValue,
    Lifecycle,
    Tier,
    ValueWeights,
    assign_tiers,
    tier_counts,
    value_score,
)


def value(
    revenue: str = "1000",
    tenure: float = 1.0,
    cost: str = "100",
    complaints: int = 0,
    lifecycle: Lifecycle = Lifecycle.CLIENT,
    vip: bool = False,
) -> CustomerValue:
    return CustomerValue(Decimal(revenue), tenure, Decimal(cost), complaints, lifecycle, vip)


def test_score_is_weighted_revenue_plus_tenure_minus_cost() -> None:
    assert value_score(value("1000", 2.0, "300")) == pytest.approx(1000 + 200 - 300)
    weights = ValueWeights(revenue=2.0, tenure=0.0, cost=0.5)
    assert value_score(value("1000", 2.0, "300"), weights) == pytest.approx(2000 - 150)


def test_costlier_customer_scores_lower() -> None:
    assert value_score(value(cost="900")) < value_score(value(cost="100"))


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError):
        ValueWeights(cost=-1.0)


def test_thousand_customers_give_exactly_50_a_and_150_b() -> None:
    rng = random.Random(7)
    scores = {f"c{i:04d}": rng.uniform(-500, 50_000) for i in range(1000)}
    tiers = assign_tiers(scores)
    counts = {t: list(tiers.values()).count(t) for t in Tier}
    assert counts == {Tier.A: 50, Tier.B: 150, Tier.C: 800}
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    assert {tiers[cid] for cid in ranked[:50]} == {Tier.A}
    assert {tiers[cid] for cid in ranked[50:200]} == {Tier.B}
    assert {tiers[cid] for cid in ranked[200:]} == {Tier.C}


def test_ties_are_broken_by_id_whatever_the_input_order() -> None:
    ids = [f"c{i:02d}" for i in range(40)]
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    first = assign_tiers(dict.fromkeys(ids, 10.0), top_a=0.05, top_b=0.15)
    second = assign_tiers(dict.fromkeys(shuffled, 10.0), top_a=0.05, top_b=0.15)
    assert first == second
    assert [cid for cid in ids if first[cid] is Tier.A] == ["c00", "c01"]
    assert [cid for cid in ids if first[cid] is Tier.B] == [f"c{i:02d}" for i in range(2, 8)]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, (0, 0)), (1, (1, 0)), (10, (1, 1)), (19, (1, 2)), (20, (1, 3)), (100, (5, 15)), (1000, (50, 150))],
)
def test_tier_counts_floor_but_keep_one_a(n: int, expected: tuple[int, int]) -> None:
    assert tier_counts(n) == expected


def test_no_a_tier_when_its_share_is_zero() -> None:
    assert tier_counts(10, top_a=0.0, top_b=0.5) == (0, 5)
    assert assign_tiers({}) == {}


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError):
        tier_counts(10, top_a=0.7, top_b=0.5)
