"""`ctid bench routing`: routing policies compared on the same simulated day, and decide()'s speed at scale.

Each policy routes the same seeded callers (arrivals, tiers, patience, talk times) through pbxsim's world
and ctid's real state model and ACD (`ctid.tooling.routing_sim`); the figures are the reports' own
(`reports.kpi`, as METRICS.md defines them) over the day's interaction log. The decision latency is measured
apart, on one large hand-built snapshot, so it does not depend on the simulated center's size.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import structlog

from ctid.agents import AgentState, AgentView
from ctid.customers import Tier
from ctid.daemon import tune_gc
from ctid.samples import sample_path
from ctid.state.domain import DomainEvent
from ctid.tooling.routing_sim import START, TIERS, Policy, RoutingSim, Scenario, SimResult
from reports.kpi import DEFAULT_SETTINGS, agent_performance, contacts, percentile, queue_figures
from reports.log import event_row
from routing.config import load_routing, queue_policies
from routing.engine import decide
from routing.model import QueuePolicy, RoutingSnapshot, Strategy, WaitingCall
from routing.service import priority_rules
from routing.value import PriorityRules, base_priority

log = structlog.get_logger("ctid.tooling.bench_routing")

ROUTING_YAML = sample_path("routing.yaml")  # the shipped sample, wherever ctid is installed
SERVER = "pbxsim"  # the interaction rows' server
# reports.kpi.queue_figures' keys shown per policy and tier (METRICS.md; service level within 20 s)
FIGURES = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "open",
    "service_level",
    "asa_s",
    "wait_p50_s",
    "p90_wait_s",
    "abandon_rate",
)
RATIOS = frozenset({"service_level", "abandon_rate"})
LATENCY_AGENTS = 10_000
LATENCY_WAITING = 2_000
# Agents ready while 2,000 callers wait are those who came free since the last routing pass: 10,000
# agents at a 240 s AHT free about 42 a second, so 1% (100) is what 2.4 s of them add up to. The latency
# with more agents ready (more offers to make in one pass) is reported beside it, `with_more_ready`.
LATENCY_READY_SHARE = 0.01
LATENCY_MORE_READY = (0.05, 0.20)
LATENCY_RUNS = 200
# the rest of the agents: talking, wrapping up, ringing, on hold, paused, logged out
BUSY_STATUSES = {
    AgentState.ON_CALL_INBOUND: 0.65,
    AgentState.WRAP_UP: 0.15,
    AgentState.RESERVED: 0.02,
    AgentState.ON_HOLD: 0.03,
    AgentState.PAUSED: 0.10,
    AgentState.LOGGED_OUT: 0.05,
}


def policies(rules: PriorityRules) -> list[Policy]:
    """The baselines as Asterisk's queues route (arrival order; leastrecent, fewestcalls), then ctid's."""
    return [
        Policy("fifo_longest_idle", Strategy.LONGEST_IDLE),
        Policy("fifo_fewest_calls", Strategy.FEWEST_CALLS),
        Policy("ctid", Strategy.LEAST_OCCUPIED, rules),
    ]


def parse_mix(text: str) -> tuple[float, float, float]:
    """`0.10,0.30,0.60` -> the shares of tiers A, B and C."""
    parts = [float(part) for part in text.split(",")]
    if len(parts) != 3:
        raise ValueError(f"--mix needs three shares A,B,C, not {text!r}")
    return parts[0], parts[1], parts[2]


# ---- the figures (METRICS.md) ---------------------------------------------------------------------------


def interaction_rows(events: Sequence[DomainEvent]) -> list[dict[str, Any]]:
    """The day's domain events as interaction-log rows, which `reports.kpi` reads."""
    return [event_row(SERVER, event) for event in events]


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures (and a few more) of one group of contacts: ratios to 4 places, seconds to 2."""
    out: dict[str, Any] = {}
    for key in FIGURES:
        value = figures[key]
        out[key] = None if value is None else round(value, 4 if key in RATIOS else 2)
    return out


def policy_figures(result: SimResult) -> dict[str, Any]:
    """One policy's figures per tier and overall, and how evenly its agents were loaded over the day."""
    rows = interaction_rows(result.events)
    found = contacts(rows)
    start, end = result.day
    occupancy = [
        a["occupancy"] for a in agent_performance(rows, start=start, end=end) if a["occupancy"] is not None
    ]
    return {
        "overall": _rounded(queue_figures(found)),
        "tiers": {tier: _rounded(queue_figures([c for c in found if c.tier == tier])) for tier in TIERS},
        "occupancy_spread_pts": round((max(occupancy) - min(occupancy)) * 100, 2),
        "occupancy_mean": round(statistics.fmean(occupancy), 4),
        "offers": result.offers,
        "ami_events": result.ami_events,
    }


def run_policy(scenario: Scenario, policy: Policy) -> dict[str, Any]:
    """One simulated day under one policy (a process of its own when several run at once).

    The GC is tuned as the daemon tunes it: a day's interaction log stays in memory until the figures.
    """
    tune_gc()
    started, cpu = time.perf_counter(), time.process_time()
    result = RoutingSim(scenario, policy).run()
    figures = policy_figures(result)
    figures["sim_seconds"] = round(time.perf_counter() - started, 2)
    figures["sim_cpu_seconds"] = round(time.process_time() - cpu, 2)  # the day's own cost, however shared
    return figures


# ---- decision latency -----------------------------------------------------------------------------------


def latency_snapshot(
    queues: dict[str, QueuePolicy],
    rules: PriorityRules,
    *,
    agents: int = LATENCY_AGENTS,
    waiting: int = LATENCY_WAITING,
    ready_share: float = LATENCY_READY_SHARE,
    seed: int = 1,
    now: float = START,
) -> RoutingSnapshot:
    """A large center's routing state at one instant.

    Agents serve one or two of the queues, nearly all qualified (a few juniors only once a widening step
    allows), in every status; callers of every tier have waited up to five minutes, a few of them after an
    agent let their call ring out.
    """
    rng = random.Random(f"ctid-bench-latency-{seed}")
    names = list(queues)
    views = []
    for index in range(agents):
        member = tuple(rng.sample(names, rng.choice((1, 1, 2))))
        levels: dict[str, int] = {}
        for name in member:
            for skill, minimum in queues[name].skills:
                level = rng.randint(minimum, 10) if rng.random() < 0.95 else max(1, minimum - 1)
                levels[skill] = max(levels.get(skill, 0), level)
        if rng.random() < ready_share:
            status = AgentState.READY
        else:
            status = rng.choices(list(BUSY_STATUSES), list(BUSY_STATUSES.values()))[0]
        views.append(
            AgentView(
                f"agent-{index}",
                f"PJSIP/{10_000 + index}",
                status,
                now - rng.uniform(0, 600),
                skills=tuple(sorted(levels.items())),
                queues=member,
                occupancy=rng.random(),
                quality=rng.random(),
                last_offered_seq=rng.randrange(1_000_000),
                calls_handled=rng.randrange(150),
            )
        )
    calls = []
    for index in range(waiting):
        tier = rng.choices(TIERS, (0.10, 0.30, 0.60))[0]
        rang_out = rng.random() < 0.05
        calls.append(
            WaitingCall(
                f"call-{index}",
                f"PJSIP/trunk-{index:08x}",
                rng.choice(names),
                now - rng.uniform(0, 300),
                tier=tier,
                base_priority=base_priority(Tier(tier), None, rules),
                excluded_agents=(f"agent-{rng.randrange(agents)}",) if rang_out else (),
            )
        )
    return RoutingSnapshot(
        queues,
        tuple(views),
        tuple(calls),
        ageing_per_s=rules.ageing_per_s,
        head_start_after_s=rules.head_start_after_s,
    )


def time_decisions(snapshot: RoutingSnapshot, now: float, runs: int = LATENCY_RUNS) -> dict[str, Any]:
    """decide() `runs` times a quarter second apart (callers age, the order shifts): p50/p99 in ms."""
    samples = []
    offers = 0
    for run in range(runs):
        started = time.perf_counter()
        offers = len(decide(snapshot, now + run * 0.25))
        samples.append(time.perf_counter() - started)
    return {
        "agents": len(snapshot.agents),
        "waiting": len(snapshot.waiting),
        "ready": sum(a.status is AgentState.READY for a in snapshot.agents),
        "offers": offers,
        "runs": runs,
        "p50_ms": round((percentile(samples, 50) or 0.0) * 1000, 3),
        "p99_ms": round((percentile(samples, 99) or 0.0) * 1000, 3),
    }


def decision_latency(queues: dict[str, QueuePolicy], rules: PriorityRules, seed: int) -> dict[str, Any]:
    """decide() on 10,000 agents and 2,000 waiting callers, the GC tuned as the daemon tunes it."""
    tune_gc()
    now = START
    main = time_decisions(latency_snapshot(queues, rules, seed=seed, now=now), now)
    main["ready_share"] = LATENCY_READY_SHARE
    main["with_more_ready"] = {
        f"{share:g}": time_decisions(
            latency_snapshot(queues, rules, ready_share=share, seed=seed, now=now), now, LATENCY_RUNS // 4
        )
        for share in LATENCY_MORE_READY
    }
    return main


# ---- the benchmark --------------------------------------------------------------------------------------


def targets(report: dict[str, Any]) -> dict[str, bool]:
    """The issue's done criteria, checked on this run (a figure without calls behind it counts as 0)."""
    return {
        **day_targets(report["policies"]),
        "decision_p99_le_2ms": report["decision_latency"]["p99_ms"] <= 2.0,
    }


def day_targets(figures: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The criteria one simulated day decides: ctid's figures against first-come-first-served's."""
    ctid, fifo = figures["ctid"], figures["fifo_longest_idle"]

    def value(group: dict[str, Any], key: str) -> float:
        return float(group[key] or 0.0)

    tier_a, tier_b, tier_c = (ctid["tiers"][tier] for tier in TIERS)
    return {
        "ctid_tier_a_service_level_ge_95pct": value(tier_a, "service_level") >= 0.95,
        "ctid_tier_b_service_level_ge_85pct": value(tier_b, "service_level") >= 0.85,
        "ctid_abandon_rate_le_fifo": value(ctid["overall"], "abandon_rate")
        <= value(fifo["overall"], "abandon_rate"),
        "ctid_tier_c_p90_wait_le_2x_fifo": value(tier_c, "p90_wait_s")
        <= 2 * value(fifo["tiers"]["C"], "p90_wait_s"),
        "ctid_occupancy_spread_le_5pts": ctid["occupancy_spread_pts"] <= 5.0,
    }


def _run_all(scenario: Scenario, chosen: list[Policy]) -> dict[str, dict[str, Any]]:
    """Every policy's day at once, one process each (on fewer cores they share them and end together)."""
    if (os.cpu_count() or 1) <= 1:
        return {policy.name: run_policy(scenario, policy) for policy in chosen}
    with ProcessPoolExecutor(max_workers=len(chosen)) as pool:
        futures = {policy.name: pool.submit(run_policy, scenario, policy) for policy in chosen}
        return {name: future.result() for name, future in futures.items()}


def parse_seeds(text: str) -> list[int]:
    """`1-24` or `1,5,9` (or both, `1-4,9`) -> the seeds, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    if not seeds:
        raise ValueError(f"--seeds names no seed: {text!r}")
    return seeds


def _scenario(args: argparse.Namespace, seed: int) -> Scenario:
    return Scenario(agents=args.agents, load=args.load, mix=parse_mix(args.mix), hours=args.hours, seed=seed)


def bench_routing(args: argparse.Namespace) -> dict[str, Any]:
    """The issue's benchmark: every policy's day on the same callers, the decision latency, the targets.

    With `--seeds`, the days of many seeds instead, ctid against first-come-first-served (`seed_study`).
    """
    if getattr(args, "seeds", None):
        return seed_study(args, parse_seeds(args.seeds))
    started = time.perf_counter()
    config = load_routing(ROUTING_YAML)
    rules = priority_rules(config)
    scenario = _scenario(args, args.seed)
    report: dict[str, Any] = {
        "bench": "routing",
        "seed": scenario.seed,
        "scenario": {
            "agents": scenario.agents,
            "load": scenario.load,
            "mix": dict(zip(TIERS, scenario.mix, strict=True)),
            "hours": scenario.hours,
            "calls_per_hour": round(scenario.calls_per_hour, 1),
            "aht_s": scenario.aht_s,
            "wrap_up_s": scenario.wrap_up_s,
            "patience_mean_s": scenario.patience_mean_s,
            "service_level_s": DEFAULT_SETTINGS.default_service_level_s,
            "priorities": {
                "base": {tier.value: base for tier, base in rules.base.items()},
                "ageing_per_s": rules.ageing_per_s,
                "head_start_after_s": rules.head_start_after_s,
            },
        },
        "policies": _run_all(scenario, policies(rules)),
    }
    report["decision_latency"] = decision_latency(queue_policies(config), rules, scenario.seed)
    report["targets"] = targets(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    log.info("bench_routing_done", seconds=report["seconds"])
    return report


# ---- many seeds -----------------------------------------------------------------------------------------


def _seed_day(job: tuple[Scenario, Policy]) -> tuple[int, str, dict[str, Any]]:
    scenario, policy = job
    return scenario.seed, policy.name, run_policy(scenario, policy)


def _paired(differences: list[int]) -> dict[str, Any]:
    """Per-seed differences (ctid - first come first served): how they spread and which way they fall."""
    mean = statistics.fmean(differences)
    sd = statistics.stdev(differences) if len(differences) > 1 else 0.0
    half = 1.96 * sd / len(differences) ** 0.5  # the normal approximation of the mean's 95% interval
    return {
        "mean": round(mean, 2),
        "sd": round(sd, 2),
        "ci95_normal": [round(mean - half, 2), round(mean + half, 2)],
        "ctid_more": sum(d > 0 for d in differences),
        "equal": sum(d == 0 for d in differences),
        "ctid_fewer": sum(d < 0 for d in differences),
    }


def seed_study(args: argparse.Namespace, seeds: list[int]) -> dict[str, Any]:
    """ctid and first-come-first-served on the same callers for each seed, and how often each target held.

    One seed's abandons are a few hundred, and two orders that abandon alike in expectation still differ
    by a few calls on any one day, so whether ctid costs abandons is read from the paired differences.
    """
    started = time.perf_counter()
    rules = priority_rules(load_routing(ROUTING_YAML))
    chosen = [p for p in policies(rules) if p.name in ("fifo_longest_idle", "ctid")]
    jobs = [(_scenario(args, seed), policy) for seed in seeds for policy in chosen]
    days: dict[int, dict[str, dict[str, Any]]] = {seed: {} for seed in seeds}
    with ProcessPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        for seed, name, figures in pool.map(_seed_day, jobs):
            days[seed][name] = figures
    runs, differences = [], []
    met = dict.fromkeys(day_targets(days[seeds[0]]), 0)
    for seed in seeds:
        fifo, ctid = days[seed]["fifo_longest_idle"], days[seed]["ctid"]
        differences.append(ctid["overall"]["abandoned"] - fifo["overall"]["abandoned"])
        held = day_targets(days[seed])
        for name, ok in held.items():
            met[name] += ok
        runs.append(
            {
                "seed": seed,
                "offered": ctid["overall"]["offered"],
                "abandoned": {
                    "fifo_longest_idle": fifo["overall"]["abandoned"],
                    "ctid": ctid["overall"]["abandoned"],
                },
                "ctid_service_level": {tier: ctid["tiers"][tier]["service_level"] for tier in TIERS},
                "p90_wait_s_c": {
                    "fifo_longest_idle": fifo["tiers"]["C"]["p90_wait_s"],
                    "ctid": ctid["tiers"]["C"]["p90_wait_s"],
                },
                "ctid_occupancy_spread_pts": ctid["occupancy_spread_pts"],
                "targets": held,
            }
        )
    return {
        "bench": "routing_seeds",
        "seeds": seeds,
        "scenario": {"agents": args.agents, "load": args.load, "mix": args.mix, "hours": args.hours},
        "runs": runs,
        "abandoned_ctid_minus_fifo": _paired(differences),
        "targets_held_on_seeds": met,
        "seconds": round(time.perf_counter() - started, 1),
    }
