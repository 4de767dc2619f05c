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

from ctid.simday import DEFAULT_ROUTING, sim_day
from reports import kpi
from reports.kpi import KpiSettings
from reports.log import InteractionLog, load_events, open_engine
from reports.report import run_report
from reports.store import rebuild
from routing.config import load_routing
from routing.model import Strategy
from routing.service import priority_rules
from routing.sim import Policy, RoutingSim, Scenario

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
