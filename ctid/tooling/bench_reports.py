"""`ctid bench reports`: a month of a large center's log in SQLite and PostgreSQL, and the reports timed.

The traffic is one simulated day (pbxsim's world, ctid's state model and routing,
`ctid.tooling.routing_sim`) copied over 30 days: each copy gets its own call ids and, when several copies
share a day, its own agents, so the month is `--calls` calls of real event sequences. Events reach each
database through the log's own writer (`InteractionLog._write`, the path the daemon's batches take: events,
call summaries, and the contacts, legs and spans the reports read), so the load rate is the daemon's. Then a
30-day queue summary, interval report and agent performance report (`reports.report.run_report`), each the
median of 5 runs, and one wallboard refresh after the month's last day went through the wallboard.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from ctid.state import domain as d
from ctid.tooling.routing_sim import Policy, RoutingSim, Scenario
from reports.kpi import KpiSettings
from reports.log import InteractionLog, _as_record, upgrade_database
from reports.report import run_report
from reports.store import DAY_S
from reports.wallboard import Wallboard
from routing.config import load_routing
from routing.model import Strategy
from routing.service import priority_rules

log = structlog.get_logger("ctid.tooling.bench_reports")

DAYS = 30
RUNS = 5
BATCH = 5_000  # events per writer transaction (the daemon's batches are up to `batch_size`, 1,000)
SERVER = "pbx1"
RENAMED = ("agent", "device", "from_agent", "to_agent", "agent_channel")  # fields naming an agent
REPORTS = {"queue_summary": "queue-summary", "interval": "interval", "agent_performance": "agent-performance"}


def template_day(seed: int, agents: int = 100, hours: float = 8.0) -> tuple[list[d.DomainEvent], float, int]:
    """One simulated day of the center: its events, its first moment, and its calls."""
    from ctid.tooling.bench_routing import ROUTING_YAML

    rules = priority_rules(load_routing(ROUTING_YAML))
    scenario = Scenario(agents=agents, hours=hours, seed=seed)
    result = RoutingSim(scenario, Policy("ctid", Strategy.LEAST_OCCUPIED, rules)).run()
    calls = len({e.linkedid for e in result.events if isinstance(e, d.CallArrived)})
    return result.events, result.day[0], calls


def copy_event(event: d.DomainEvent, shift: float, copy: int, team: int) -> d.DomainEvent:
    """The event `shift` seconds later, in copy number `copy` of its call; team > 0 renames the agents."""
    changes: dict[str, Any] = {"at": event.at + shift}
    if event.linkedid:
        changes["linkedid"] = f"{event.linkedid}-{copy}"
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name == "arrived_at" and isinstance(value, float):
            changes[f.name] = value + shift
        elif f.name == "uniqueid" and value:
            changes[f.name] = f"{value}-{copy}"
        elif f.name in RENAMED and value and team:
            changes[f.name] = f"{value}-t{team}"
    return dataclasses.replace(event, **changes)


def month(
    events: list[d.DomainEvent], calls_per_day: int, calls: int
) -> Iterator[tuple[int, int, d.DomainEvent]]:
    """(copy, day, event) for enough copies of the day to make `calls` calls over DAYS days."""
    copies = max(1, math.ceil(calls / calls_per_day))
    per_day = math.ceil(copies / DAYS)
    for copy in range(copies):
        day, team = divmod(copy, per_day)
        shift = day * DAY_S
        for event in events:
            yield copy, day, copy_event(event, shift, copy, team)


def load(url: str, stream: Iterator[tuple[int, int, d.DomainEvent]], spool: Path) -> dict[str, Any]:
    """Every event through the log's writer, in batches; events and seconds."""
    upgrade_database(url)
    writer = InteractionLog(url, spool, batch_size=BATCH)
    writer._ensure_schema()
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    written = 0
    for i, (_, _, event) in enumerate(stream):
        batch.append(_as_record((f"bench:{SERVER}:{i}", SERVER, event)))
        if len(batch) == BATCH:
            written += writer._write(batch)
            batch = []
    if batch:
        written += writer._write(batch)
    seconds = time.perf_counter() - started
    writer.engine.dispose()
    return {"events": written, "load_s": round(seconds, 1), "events_per_s": round(written / seconds)}


def _median_ms(run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1), result


def time_reports(url: str, start: float, settings: KpiSettings) -> dict[str, Any]:
    end = start + DAYS * DAY_S
    out: dict[str, Any] = {}
    for key, name in REPORTS.items():

        def run(name: str = name) -> Any:
            return run_report(name, url, start=start, end=end, interval_s=1800, settings=settings)

        ms, result = _median_ms(run)
        out[key] = {"median_ms": ms, "rows": len(result)}
        if key == "agent_performance":
            out[key]["handled"] = sum(r["handled"] for r in result)
        else:
            out[key]["offered"] = sum(r["offered"] for r in result)
    return out


def time_wallboard(events: list[d.DomainEvent], calls_per_day: int, calls: int) -> dict[str, Any]:
    """The month's last full day through a wallboard, then one refresh (median of 5, each rebuilt in full)."""
    copies = max(1, math.ceil(calls / calls_per_day))
    per_day = math.ceil(copies / DAYS)
    last_day = copies // per_day - 1 if copies >= per_day else 0  # the last day with all its copies
    today = [e for _, day, e in month(events, calls_per_day, calls) if day == last_day]
    now = max(e.at for e in today)
    agents = sorted({e.agent for e in today if isinstance(e, d.AgentStateChanged)})
    queues = sorted({e.queue for e in today if isinstance(e, d.CallWaiting)})

    def views() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        tiles = [
            {"queue": q, "calls_waiting": 0, "longest_wait_s": None, "agents": {"ready": 0}} for q in queues
        ]
        grid = [{"id": a, "name": a, "status": "ready", "device": a, "time_in_state_s": 1.0} for a in agents]
        return tiles, grid

    board = Wallboard(views=views, clock=lambda: now)
    started = time.perf_counter()
    for event in today:
        board.on_event(SERVER, event)
    fold_s = time.perf_counter() - started

    def refresh() -> str | None:
        board._last = ""  # a change: the snapshot is rebuilt and serialised in full
        return board.refresh()

    ms, message = _median_ms(refresh)
    return {
        "events_today": len(today),
        "agents": len(agents),
        "events_fold_s": round(fold_s, 2),
        "refresh_median_ms": ms,
        "snapshot_bytes": len(message or ""),
    }


def bench_reports(args: argparse.Namespace) -> dict[str, Any]:
    from ctid.tooling.pgtemp import PostgresUnavailable, throwaway_postgres

    started = time.perf_counter()
    events, start, calls_per_day = template_day(args.seed, args.agents, args.hours)
    copies = max(1, math.ceil(args.calls / calls_per_day))
    out: dict[str, Any] = {
        "calls": copies * calls_per_day,
        "events": copies * len(events),
        "days": DAYS,
        "template": {
            "calls": calls_per_day,
            "events": len(events),
            "seed": args.seed,
            "agents": args.agents,
            "hours": args.hours,
        },
        "template_s": round(time.perf_counter() - started, 1),
    }
    settings = KpiSettings()
    databases = set(args.databases.split(","))
    with tempfile.TemporaryDirectory(prefix="ctid-bench-") as tmp:
        if "sqlite" in databases:
            url = f"sqlite:///{tmp}/bench.db"
            out["sqlite"] = load(url, month(events, calls_per_day, args.calls), Path(tmp) / "spool")
            log.warning("bench_reports_loaded", database="sqlite", **out["sqlite"])
            out["sqlite"]["reports"] = time_reports(url, start, settings)
        try:
            if "postgresql" not in databases:
                raise PostgresUnavailable("not asked for (--databases)")
            with throwaway_postgres(fsync=True) as server:
                url = server.create_database()
                out["postgresql"] = load(url, month(events, calls_per_day, args.calls), Path(tmp) / "pg")
                log.warning("bench_reports_loaded", database="postgresql", **out["postgresql"])
                out["postgresql"]["reports"] = time_reports(url, start, settings)
        except PostgresUnavailable as exc:
            out["postgresql"] = {"skipped": str(exc)}
    out["wallboard"] = time_wallboard(events, calls_per_day, args.calls)
    return out
