"""The store the log's writer folds as it writes gives the reports the same figures as folding the events.

Reports over long periods read `contacts`, `agent_legs` and `agent_spans` (reports.store) instead of
folding every event again; these tests hold the two paths to the same numbers, on days written in batches
small enough that calls and agents cross many batch boundaries, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from ctid.tooling.bench_reports import copy_event
from ctid.tooling.routing_sim import Policy, RoutingSim, Scenario
from ctid.tooling.simday import DEFAULT_ROUTING, sim_day
from reports import kpi
from reports.kpi import KpiSettings
from reports.log import InteractionLog, load_events, open_engine
from reports.report import run_report
from reports.store import DAY_S, AgentSpan, AgentStateDay, fill_state_days, rebuild
from routing.config import load_routing
from routing.model import Strategy
from routing.service import priority_rules

SERVER = "pbxsim"


def same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to a microsecond (SQL sums add in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), path
        for key in a:
            same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, abs_tol=1e-6), (path, a, b)
    else:
        assert a == b, (path, a, b)


def assert_reports_agree(url: str, start: float, end: float, settings: KpiSettings) -> int:
    """Every stored report equals the fold over the events; returns the contacts compared.

    The fold is given the rows after `end` too: a contact that arrived in the period counts with the
    outcome it had, even if that came after the period (the store knows it as soon as it was written).
    """
    rows = load_events(url, start - 12 * 3600, end + 12 * 3600)
    folded = {
        "queue-summary": kpi.queue_summary(rows, start=start, end=end, settings=settings),
        "interval": kpi.interval_report(rows, start=start, end=end, interval_s=900, settings=settings),
        "agent-performance": kpi.agent_performance(rows, start=start, end=end),
        "agent-comparison": kpi.agent_comparison(rows, start=start, end=end),
        "durations": kpi.distributions(rows, start=start, end=end),
        "inbound-summary": kpi.inbound_summary(
            rows, start=start, end=end, timezone="Asia/Kathmandu", settings=settings
        ),
    }
    for name, expected in folded.items():
        stored = run_report(
            name, url, start=start, end=end, interval_s=900, settings=settings, timezone="Asia/Kathmandu"
        )
        same(stored, expected, name)
    return sum(q["offered"] for q in folded["queue-summary"])


def small_day() -> tuple[list[Any], tuple[float, float]]:
    rules = priority_rules(load_routing(DEFAULT_ROUTING))
    result = RoutingSim(
        Scenario(agents=8, hours=1.5, seed=4), Policy("ctid", Strategy.LEAST_OCCUPIED, rules)
    ).run()
    return result.events, result.day


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_day_written_seven_events_a_batch_reports_as_the_fold_does(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'log.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    )
    events, (start, end) = small_day()

    async def write() -> None:
        log = InteractionLog(url, tmp_path / "spool.jsonl", batch_size=7, flush_interval_s=3600)
        await log.start()
        for i, event in enumerate(events):
            log.record(SERVER, event)
            if i % 7 == 6:
                await log.flush()
        await log.close()

    asyncio.run(write())
    offered = assert_reports_agree(url, start, end, KpiSettings())
    assert offered > 100
    # a period that cuts calls and agents' states in the middle: clipped the same way
    assert_reports_agree(url, start + 1800.5, start + 3600.25, KpiSettings())
    # and folding the whole log again from scratch (what the migration does for an older log) agrees too
    engine = open_engine(url)
    with engine.begin() as connection:
        assert rebuild(connection) == len(events)
    engine.dispose()
    assert_reports_agree(url, start + 1800.5, start + 3600.25, KpiSettings())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_days_of_agent_states_report_as_the_fold_does(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Three days whose calls run over UTC midnight, the same agents every day: agents' spans cross days
    (an agent ready from the last call of one day to the first of the next). Month reports sum whole days
    from `agent_state_days` and the part-days at the edges from the spans; both must equal the fold."""
    url = (
        f"sqlite:///{tmp_path / 'log.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    )
    events, (start, _) = small_day()
    to_midnight = math.floor(start / DAY_S) * DAY_S + DAY_S - start
    days = [copy_event(e, to_midnight - 1800 + day * DAY_S, day, 0) for day in range(3) for e in events]
    first = days[0].at
    midnight = first + 1800

    async def write() -> None:
        log = InteractionLog(url, tmp_path / "spool.jsonl", batch_size=50, flush_interval_s=3600)
        await log.start()
        for event in days:
            log.record(SERVER, event)
        await log.close()

    asyncio.run(write())
    last = days[-1].at
    periods = [
        (first - 60, last + 60),  # two whole days and two part-days
        (midnight, midnight + 2 * DAY_S),  # whole days only
        (first + 1234.5, midnight + DAY_S + 999.25),  # one whole day, edges inside calls
        (midnight + 600.5, midnight + 4000.25),  # inside one day
        (midnight - 900.5, midnight + 700.75),  # across one midnight, no whole day
    ]

    def agents(lo: float, hi: float) -> Any:
        return run_report("agent-performance", url, start=lo, end=hi)

    for lo, hi in periods:
        rows = load_events(url, lo - DAY_S, hi + DAY_S)
        expected = kpi.agent_performance(rows, start=lo, end=hi)
        assert sum(a["handled"] for a in expected) > 0
        same(agents(lo, hi), expected, f"{lo}-{hi}")
    # day totals are summed, not the spans: a report over whole days reads none of the spans closed in them
    engine = open_engine(url)
    with engine.begin() as connection:
        connection.execute(
            delete(AgentSpan).where(
                AgentSpan.begin >= midnight + 3600, AgentSpan.finish < midnight + DAY_S - 3600
            )
        )
    whole = agents(midnight, midnight + 2 * DAY_S)
    same(
        whole,
        kpi.agent_performance(
            load_events(url, first - DAY_S, last + DAY_S), start=midnight, end=midnight + 2 * DAY_S
        ),
        "whole days",
    )
    # a store folded before the day totals existed gets them from its spans (migration 0003)
    with engine.begin() as connection:
        rebuild(connection)
        connection.execute(delete(AgentStateDay))
        fill_state_days(connection)
    engine.dispose()
    for lo, hi in periods:
        rows = load_events(url, lo - DAY_S, hi + DAY_S)
        same(agents(lo, hi), kpi.agent_performance(rows, start=lo, end=hi), f"filled {lo}-{hi}")


def test_a_simulated_day_with_holds_and_deflections_reports_as_the_fold_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'day.db'}"
    result = asyncio.run(
        sim_day(seed=5, hours=2, db_url=url, ami_log=tmp_path / "day.ami", calls_per_hour=80)
    )
    start = result["virtual_start"]
    cfg = load_routing(DEFAULT_ROUTING)
    settings = KpiSettings(service_level_s={n: q.service_level.threshold_s for n, q in cfg.queues.items()})
    rows = load_events(url, start - 60, start + 3 * 3600)
    kinds = {r["kind"] for r in rows}
    assert {"RingNoAnswer", "CallHeld", "AgentStateChanged", "CallDeflected"} <= kinds, kinds
    assert assert_reports_agree(url, start - 60, start + 3 * 3600, settings) > 100
    assert_reports_agree(url, start + 1234.5, start + 4321.5, settings)
    # a center that counts abandons under 12 s as short: the report's setting, whatever the writer used
    longer = KpiSettings(short_abandon_s=12.0, service_level_s=settings.service_level_s)
    assert_reports_agree(url, start - 60, start + 3 * 3600, longer)

    def shorts(kpis: KpiSettings) -> int:
        summary = run_report("queue-summary", url, start=start - 60, end=start + 3 * 3600, settings=kpis)
        return sum(q["short_abandoned"] for q in summary)

    assert shorts(longer) > shorts(settings)
