"""Customer value: scores, A/B/C tiers, and the queue priority they earn."""

import random
from decimal import Decimal

import pytest

from routing.value import (
    CustomerValue,
    Lifecycle,
    PriorityRules,
    Tier,
    ValueWeights,
    assign_tiers,
    base_priority,
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


RULES = PriorityRules()


def test_plain_tiers_order_a_b_c() -> None:
    a, b, c = (base_priority(t, value(), RULES) for t in (Tier.A, Tier.B, Tier.C))
    assert a > b > c


def test_open_complaint_and_vip_come_before_a_plain_a_caller() -> None:
    plain_a = base_priority(Tier.A, value(), RULES)
    complaint_c = base_priority(Tier.C, value(complaints=1), RULES)
    vip_c = base_priority(Tier.C, value(vip=True), RULES)
    assert complaint_c > plain_a
    assert vip_c > plain_a
    # A complaint is more urgent than VIP status, and two complaints count like one.
    assert complaint_c > vip_c
    assert base_priority(Tier.C, value(complaints=3), RULES) == complaint_c


def test_lost_customer_calling_back_is_boosted() -> None:
    lost_c = base_priority(Tier.C, value(lifecycle=Lifecycle.LOST), RULES)
    assert lost_c > base_priority(Tier.C, value(), RULES)
    assert lost_c > base_priority(Tier.B, value(), RULES)


def test_unknown_caller_and_untiered_customer_get_the_default_tier() -> None:
    assert base_priority(None, None, RULES) == RULES.base[Tier.C]
    assert base_priority(None, None, PriorityRules(unknown_tier=Tier.B)) == RULES.base[Tier.B]
    assert base_priority(None, value(vip=True), RULES) == RULES.base[Tier.C] + RULES.vip_boost


def test_rules_need_a_base_for_every_tier() -> None:
    with pytest.raises(ValueError):
        PriorityRules(base={Tier.A: 100.0, Tier.B: 50.0})


def test_rules_refuse_negative_ageing_or_head_start_delay() -> None:
    with pytest.raises(ValueError, match="ageing"):
        PriorityRules(ageing_per_s=-1.0)
    with pytest.raises(ValueError, match="head_start_after_s"):
        PriorityRules(head_start_after_s=-1.0)
