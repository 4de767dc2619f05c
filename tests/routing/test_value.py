"""The queue priority a caller's value tier and situation earn."""

import pytest

from ctid.customers import Lifecycle, Tier
from routing.value import PriorityRules, base_priority
from tests.customers.test_value import value

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
