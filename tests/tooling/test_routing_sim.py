"""pbxsim's world routed by ctid's own state model and ACD in virtual time: small, exact, repeatable days."""

from __future__ import annotations

import statistics

import pytest

from ctid.state import domain as d
from ctid.tooling.routing_sim import Policy, RoutingSim, Scenario
from reports.kpi import Contact, Outcome, contacts
from reports.log import event_row
from routing.model import Strategy
from routing.value import PriorityRules

FIFO = Policy("fifo_longest_idle", Strategy.LONGEST_IDLE)
TIERED = Policy("ctid", Strategy.LEAST_OCCUPIED, PriorityRules(ageing_per_s=0.5))  # A 100, B 50, C 10


def small(seed: int = 3, **kw: object) -> Scenario:
    options: dict[str, object] = {"agents": 10, "hours": 0.5, "seed": seed}
    options.update(kw)
    return Scenario(**options)  # type: ignore[arg-type]


def logged(events: list[d.DomainEvent]) -> list[Contact]:
    """The day's queued contacts, as the reports read them from the interaction log."""
    return contacts([event_row("pbxsim", event) for event in events])


def run(scenario: Scenario, policy: Policy = FIFO) -> list[Contact]:
    return logged(RoutingSim(scenario, policy).run().events)


def mean_wait(calls: list[Contact], tier: str) -> float:
    return statistics.fmean(c.wait or 0.0 for c in calls if c.tier == tier and c.outcome is Outcome.ANSWERED)


def test_every_offered_call_is_answered_or_abandoned_and_agents_go_from_ready_to_work() -> None:
    result = RoutingSim(small(), FIFO).run()
    calls = logged(result.events)
    assert len(calls) > 50  # 10 agents x 0.95 / 240 s: about 71 an hour
    assert {c.outcome for c in calls} == {Outcome.ANSWERED, Outcome.ABANDONED}
    for call in calls:
        assert call.wait is not None and call.wait >= 0
        assert call.tier in ("A", "B", "C") and call.queue == "inbound"
    answered = [c for c in calls if c.outcome is Outcome.ANSWERED]
    assert result.offers >= len(answered) > 0
    states = [e for e in result.events if isinstance(e, d.AgentStateChanged)]
    assert {e.agent for e in states} == {str(1001 + i) for i in range(10)}
    assert {e.state for e in states} == {
        "ready",
        "reserved",
        "ringing",
        "on_call_inbound",
        "on_hold",
        "wrap_up",
    }
    assert result.day[1] - result.day[0] == 1800
    assert all(result.day[0] <= c.arrive < result.day[1] for c in calls)


def test_the_same_seed_gives_the_same_day_and_another_seed_another() -> None:
    def outcomes(calls: list[Contact]) -> list[tuple[object, ...]]:
        return [(c.tier, c.arrive, c.outcome, c.wait, c.agent) for c in calls]

    assert outcomes(run(small(seed=5), TIERED)) == outcomes(run(small(seed=5), TIERED))
    assert outcomes(run(small(seed=5))) != outcomes(run(small(seed=6)))


def test_every_policy_meets_the_same_callers() -> None:
    def callers(calls: list[Contact]) -> list[tuple[str, float]]:
        return sorted((c.tier, round(c.arrive, 6)) for c in calls)

    fifo, tiered = run(small(), FIFO), run(small(), TIERED)
    assert callers(fifo) == callers(tiered)
    assert [c.wait for c in fifo] != [c.wait for c in tiered]  # routed differently


def test_tier_priority_makes_a_callers_wait_less_than_c_callers() -> None:
    scenario = small(agents=8, hours=1.0, load=1.0, mix=(0.3, 0.2, 0.5))
    fifo, tiered = run(scenario, FIFO), run(scenario, TIERED)
    assert mean_wait(tiered, "A") < mean_wait(tiered, "C")
    assert mean_wait(tiered, "A") < mean_wait(fifo, "A")


def test_tiers_follow_the_mix_by_caller_number() -> None:
    scenario = Scenario(mix=(0.2, 0.0, 0.8))
    tiers = [scenario.tier_of(f"1390000{n:04d}") for n in range(2000)]
    assert "B" not in tiers and 0.15 < tiers.count("A") / len(tiers) < 0.25
    assert scenario.tier_of("13900000001") == scenario.tier_of("13900000001")


@pytest.mark.parametrize(
    "bad",
    [{"mix": (0.5, 0.5, 0.5)}, {"mix": (1.2, -0.2, 0.0)}, {"agents": 0}, {"aht_s": 10.0}],
)
def test_a_scenario_that_cannot_run_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Scenario(**bad)  # type: ignore[arg-type]
