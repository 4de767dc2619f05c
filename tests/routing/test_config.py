"""routing.yaml: the sample loads, converts to engine inputs, and every mistake names file:line:column."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctid.agents import AgentState
from ctid.errors import ConfigError
from routing.config import (
    RoutingConfig,
    agent_views,
    is_open,
    load_routing,
    load_routing_checked,
    queue_policies,
)
from routing.model import QueuePolicy, Strategy

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
FILE = Path("conf/routing.yaml")
SHANGHAI = ZoneInfo("Asia/Shanghai")

GOOD = """\
queues:
  sales:
    skills: {sales: 5}
    max_wait_s: 300
    overflow:
      - {after_s: 60, action: widen, widen_by: 2}
dnis:
  4000: sales
agents:
  - {id: alice, name: Alice, device: PJSIP/1001, skills: {sales: 6}, queues: [sales]}
"""


def load_text(text: str) -> tuple[RoutingConfig, list[str]]:
    return load_routing_checked(FILE, env={}, text=text)


def only_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(text)
    assert len(caught.value.errors) == 1, caught.value.errors
    return caught.value.errors[0]


# --- the sample ------------------------------------------------------------------------------------------


def test_the_shipped_sample_loads_without_errors_or_warnings() -> None:
    config, warnings = load_routing_checked(SAMPLE, env={})
    assert warnings == []
    assert set(config.queues) == {"sales", "support", "200", "vip"}
    assert config.dnis == {"4000": "sales", "4001": "support"}
    assert config.queue_for_number("40 00") == "sales"
    assert [agent.device for agent in config.agents][:2] == ["PJSIP/1001", "PJSIP/1002"]
    assert (config.tiers.thresholds.top_a, config.tiers.thresholds.top_b) == (0.05, 0.15)
    assert config.tiers.weights.cost_to_serve < 0
    assert (config.priorities.base.A, config.priorities.base.B, config.priorities.base.C) == (12, 3, 0)
    assert config.priorities.head_start_after_s == 5  # the short-abandon threshold (METRICS.md)
    assert "no-answer" in config.pause_reasons
    assert load_routing(SAMPLE, env={}) == config


def test_sample_queues_convert_to_engine_policies() -> None:
    policies = queue_policies(load_routing(SAMPLE, env={}))
    assert policies["sales"] == QueuePolicy(
        name="sales",
        skills=(("mandarin", 3), ("sales", 5)),
        strategy=Strategy.LONGEST_IDLE,
        ring_timeout_s=15,
        wrap_up_s=30,
        widen_after_s=60,
        widen_by=2,
        add_queue_after_s=120,
        add_queue="support",
    )
    assert policies["200"].widen_after_s is None
    assert (policies["200"].add_queue_after_s, policies["200"].add_queue) == (120, "support")
    assert policies["vip"].strategy is Strategy.BEST_FOR_TIER


def test_agents_convert_to_engine_views() -> None:
    views = agent_views(load_text(GOOD)[0])
    assert [(v.agent_id, v.device, v.status, v.skills, v.queues) for v in views] == [
        ("alice", "PJSIP/1001", AgentState.LOGGED_OUT, (("sales", 6),), ("sales",))
    ]


# --- business hours ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2025, 9, 30, 9, 0, tzinfo=SHANGHAI), True),  # a Tuesday morning
        (datetime(2025, 9, 30, 18, 0, tzinfo=SHANGHAI), False),  # closing time is already closed
        (datetime(2025, 9, 30, 7, 59, tzinfo=SHANGHAI), False),
        (datetime(2025, 10, 4, 10, 0, tzinfo=SHANGHAI), False),  # Saturday
        (datetime(2025, 10, 1, 10, 0, tzinfo=SHANGHAI), False),  # a Wednesday, but a holiday
        # 01:30 UTC is 09:30 in Shanghai: open, although 01:30 would be closed in UTC
        (datetime(2025, 9, 30, 1, 30, tzinfo=UTC), True),
        # Monday 23:00 UTC is already Tuesday 07:00 in Shanghai: not open yet
        (datetime(2025, 9, 29, 23, 0, tzinfo=UTC), False),
    ],
)
def test_business_hours(when: datetime, expected: bool) -> None:
    assert is_open(load_routing(SAMPLE, env={}), "sales", when) is expected


def test_a_queue_without_hours_is_always_open() -> None:
    config = load_routing(SAMPLE, env={})
    assert is_open(config, "200", datetime(2025, 10, 1, 3, 0, tzinfo=UTC))


def test_business_hours_need_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(load_routing(SAMPLE, env={}), "sales", datetime(2025, 9, 30, 9, 0))


# --- rejected files ---------------------------------------------------------------------------------------


def test_a_typo_in_a_key() -> None:
    assert only_error(GOOD.replace("max_wait_s", "max_wiat_s")) == (
        "conf/routing.yaml:4:5: queues.sales.max_wiat_s: "
        "unknown key 'max_wiat_s' (did you mean 'max_wait_s'?)"
    )


def test_a_tab() -> None:
    assert only_error(GOOD.replace("    max_wait_s", "\tmax_wait_s")) == (
        "conf/routing.yaml:4:1: a TAB is used for indentation; indent with spaces"
    )


def test_a_skill_no_agent_has() -> None:
    assert only_error(GOOD.replace("{sales: 5}", "{sales: 5, french: 2}")) == (
        "conf/routing.yaml:3:24: queues.sales.skills.french: no agent has skill french"
    )


def test_a_negative_timeout() -> None:
    assert only_error(GOOD.replace("max_wait_s: 300", "ring_timeout_s: -5")) == (
        "conf/routing.yaml:4:21: queues.sales.ring_timeout_s: Input should be greater than 0"
    )


def test_a_skill_level_out_of_range() -> None:
    assert only_error(GOOD.replace("{sales: 6}", "{sales: 11}")) == (
        "conf/routing.yaml:10:66: agents[0].skills.sales: Input should be less than or equal to 10"
    )


def test_an_unknown_queue_in_dnis() -> None:
    assert only_error(GOOD.replace("4000: sales", "4000: sails")) == (
        "conf/routing.yaml:8:9: dnis.4000: unknown queue 'sails' (did you mean 'sales'?)"
    )


def test_the_same_number_written_twice() -> None:
    assert only_error(GOOD.replace("4000: sales", '4000: sales\n  "40 00": sales')) == (
        "conf/routing.yaml:9:3: dnis.40 00: number 4000 is already routed (line 8, column 3)"
    )


def test_a_queue_nobody_can_serve() -> None:
    assert only_error(GOOD.replace("{sales: 6}", "{sales: 4}")) == (
        "conf/routing.yaml:2:3: queues.sales: nobody can serve this queue: "
        "none of its agents (alice) has sales 5 or better"
    )


def test_unknown_hours_and_closed_queue() -> None:
    text = GOOD.replace(
        "    max_wait_s: 300", "    max_wait_s: 300\n    hours: ofice\n    closed_action: queue:nope"
    )
    with pytest.raises(ConfigError) as caught:
        load_text(text)
    assert caught.value.errors == [
        "conf/routing.yaml:5:12: queues.sales.hours: unknown hours 'ofice' (hours: none are defined)",
        "conf/routing.yaml:6:20: queues.sales.closed_action: unknown queue 'nope' (queues: sales)",
    ]


def test_duplicate_agent_id_and_device() -> None:
    text = GOOD + "  - {id: alice, name: A2, device: PJSIP/1001, skills: {sales: 6}, queues: [sales]}\n"
    with pytest.raises(ConfigError) as caught:
        load_text(text)
    assert caught.value.errors == [
        "conf/routing.yaml:11:10: agents[1].id: agent id 'alice' is also used by agents[0]",
        "conf/routing.yaml:11:35: agents[1].device: device 'PJSIP/1001' is also used by agents[0]",
    ]


# --- warnings ---------------------------------------------------------------------------------------------


def test_an_unreachable_overflow_step_is_a_warning() -> None:
    text = GOOD.replace("widen_by: 2}", "widen_by: 2}\n      - {after_s: 300, action: callback}")
    config, warnings = load_text(text)
    assert warnings == [
        "conf/routing.yaml:7:19: queues.sales.overflow[1].after_s: "
        "never reached: callers leave the queue at max_wait_s (300)"
    ]
    assert len(config.queues["sales"].overflow) == 2


def test_overflow_steps_out_of_order_are_a_warning() -> None:
    text = GOOD.replace("after_s: 60", "after_s: 90").replace(
        "widen_by: 2}", "widen_by: 2}\n      - {after_s: 30, action: voicemail}"
    )
    assert load_text(text)[1] == [
        "conf/routing.yaml:7:19: queues.sales.overflow[1].after_s: "
        "steps must be in increasing order of after_s; the step before is at 90"
    ]


def test_a_skill_no_queue_needs_is_a_warning_at_the_skill() -> None:
    text = GOOD.replace("skills: {sales: 6}", "skills: {sales: 6, supprt: 4, klingon: 2}")
    config, warnings = load_text(text)
    assert warnings == [
        "conf/routing.yaml:10:69: agents[0].skills.supprt: "
        "no queue needs skill 'supprt' (queues need: sales)",
        "conf/routing.yaml:10:80: agents[0].skills.klingon: "
        "no queue needs skill 'klingon' (queues need: sales)",
    ]
    assert config.agents[0].skills == {"sales": 6, "supprt": 4, "klingon": 2}  # still loads


def test_a_misspelt_skill_suggests_the_needed_one() -> None:
    text = GOOD.replace("skills: {sales: 5}", "skills: {sales: 5, support: 2}").replace(
        "skills: {sales: 6}", "skills: {sales: 6, supprt: 4}"
    )
    with pytest.raises(ConfigError) as caught:  # support is then needed by no agent: that stays an error
        load_text(text)
    assert "no agent has skill support" in caught.value.errors[0]
    text = text.replace("skills: {sales: 6, supprt: 4}", "skills: {sales: 6, support: 2, suport: 4}")
    assert load_text(text)[1] == [
        "conf/routing.yaml:10:81: agents[0].skills.suport: "
        "no queue needs skill 'suport' (did you mean 'support'? queues need: sales, support)"
    ]


def test_many_bad_references_each_list_ten_queues_not_all() -> None:
    # 3,000 numbers routed to unknown queues among 3,000 took 118 s: difflib for every one, and every
    # message listing all 3,000 queues; now "did you mean" is for the first 50 and a message lists ten
    count = 1000
    text = (
        "queues:\n"
        + "".join(f"  q{n}: {{}}\n" for n in range(count))
        + "dnis:\n"
        + "".join(f"  '{1000 + n}': nosuch{n}\n" for n in range(count))
        + "agents:\n  - {id: a, name: A, device: PJSIP/1, queues: ["
        + ", ".join(f"q{n}" for n in range(count))
        + "]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_text(text)
    assert len(caught.value.errors) == count
    assert caught.value.errors[-1] == (
        f"conf/routing.yaml:{2 * count + 2}:11: dnis.1999: unknown queue 'nosuch999' "
        "(queues: q0, q1, q10, q100, q101, q102, q103, q104, q105, q106, ... (1000 in all))"
    )


# --- the CRM link beside the screen pop ------------------------------------------------------------------


def test_a_queue_may_name_its_crm_url() -> None:
    cfg, warnings = load_text(
        GOOD.replace(
            "max_wait_s: 300",
            'max_wait_s: 300\n    crm_url: "https://crm/x?n={caller}&c={customer}&id={call}"',
        )
    )
    assert cfg.queues["sales"].crm_url == "https://crm/x?n={caller}&c={customer}&id={call}" and warnings == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("javascript:alert(1)", "does not start with https:// or http://"),
        ("https://crm/{phone}", "unknown placeholders ['phone']"),
        ("https://crm/{caller", "crm_url 'https://crm/{caller'"),
    ],
)
def test_a_crm_url_is_a_web_address_with_ctids_placeholders(url: str, says: str) -> None:
    assert says in only_error(GOOD.replace("max_wait_s: 300", f'max_wait_s: 300\n    crm_url: "{url}"'))
