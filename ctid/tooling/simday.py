"""`ctid sim-day`: pbxsim and ctid together in virtual time, a whole day in seconds.

pbxsim's seeded callers reach ctid over real AMI and FastAGI connections; ctid routes them by the
routing file, logs every domain event to the database and every AMI byte it received to a file, so the
reports can be checked against an independent recount of that stream.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ctid.agents import NO_ANSWER, AgentState
from ctid.config import load_config
from ctid.daemon import Ctid
from ctid.samples import sample_path
from ivr.component import IvrComponent
from routing.component import RoutingComponent
from routing.config import load_routing
from routing.service import RoutingService

DEFAULT_ROUTING = sample_path("routing.yaml")  # the shipped sample, wherever ctid is installed
STEP_S = 1.0  # virtual seconds between routing passes
NO_ANSWER_BACK_S = 120.0  # how long a simulated agent stays away after letting a call ring out
# event-loop turns per step: AMI events reach ctid, its actions reach pbxsim and are answered. Twice what the
# slowest AMI client so far needed to settle a step (the panoramisk-based one: 16; the sans-I/O session: 12),
# so a day's figures depend on the decisions, not on how many turns the client takes to send an action.
SPINS = 24


def day_start(routing_path: Path, seed: int) -> float:
    """08:00 local time of the first queue's business hours on a Monday, a week further per seed."""
    cfg = load_routing(routing_path)
    hours = next((cfg.hours[q.hours] for q in cfg.queues.values() if q.hours), None)
    zone = ZoneInfo(hours.timezone if hours else "UTC")
    monday = datetime(2026, 11, 2, 8, 0, tzinfo=zone)
    return monday.timestamp() + 7 * 86400 * (seed % 40)


def report_period(routing_path: Path, virtual_start: float, hours: float) -> list[str]:
    """The `ctid report` arguments naming a simulated day's period, in the zone of its business hours."""
    cfg = load_routing(routing_path)
    hours_cfg = next((cfg.hours[q.hours] for q in cfg.queues.values() if q.hours), None)
    zone = hours_cfg.timezone if hours_cfg else "UTC"
    start = datetime.fromtimestamp(round(virtual_start), ZoneInfo(zone))
    end = datetime.fromtimestamp(math.ceil(round(virtual_start + hours * 3600, 3)), ZoneInfo(zone))
    return [
        "--from",
        start.isoformat(timespec="seconds"),
        "--to",
        end.isoformat(timespec="seconds"),
        "--timezone",
        zone,
    ]


def back_from_no_answer(routing: RoutingService, now: float) -> None:
    """Simulated agents return from a ring-no-answer pause after a while, as people at their desks do."""
    for agent in routing.book.agents.values():
        away = agent.status is AgentState.PAUSED and agent.pause_reason == NO_ANSWER
        if away and now - agent.since >= NO_ANSWER_BACK_S:
            routing.set_agent_state(agent.agent_id, AgentState.READY)


async def sim_day(
    *,
    seed: int,
    hours: float,
    db_url: str,
    ami_log: Path,
    routing_path: Path = DEFAULT_ROUTING,
    calls_per_hour: float = 60.0,
) -> dict[str, Any]:
    from pbxsim import PbxSimServer, TrafficGenerator, TrafficProfile, World, WorldClock, call_center_site

    cfg = load_routing(routing_path)
    phones = [a.device.split("/", 1)[1] for a in cfg.agents if a.device.startswith("PJSIP/")]
    world = World(seed=seed, start=day_start(routing_path, seed), endpoints=call_center_site(phones))
    profile = replace(TrafficProfile.flat(calls_per_hour), dids=tuple(cfg.dnis) or ("4000",))
    TrafficGenerator(world, profile).start()
    server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1)
    await server.start()
    with tempfile.TemporaryDirectory(prefix="ctid-sim-day-") as tmp:
        config_path = Path(tmp) / "ctid.yaml"
        config_path.write_text(
            "asterisk:\n"
            f"  - {{name: pbx1, host: 127.0.0.1, port: {server.port}, username: ctid, secret: ctid}}\n"
            "agi: {host: 127.0.0.1, port: 0}\n"
            "web: {host: 127.0.0.1, port: 0}\n"
            f"database: {db_url}\n"
            f"spool: {Path(tmp) / 'spool.jsonl'}\n"
            f"routing: {routing_path.resolve()}\n",
            encoding="utf-8",
        )
        ami_log.unlink(missing_ok=True)
        ctid = Ctid(load_config(config_path), clock=WorldClock(world), raw_log=ami_log)
        await ctid.start()
        server.agi_port = ctid.component(IvrComponent).port
        await ctid.wait_synced()
        routing = ctid.component(RoutingComponent).service
        assert routing is not None
        routing.ticker.interval_s = 3600.0  # this loop routes after every step of virtual time instead
        for agent in cfg.agents:
            routing.set_agent_state(agent.id, AgentState.READY)
        started = time.perf_counter()
        end = world.now + hours * 3600
        while world.now < end:
            await server.advance(min(STEP_S, end - world.now))
            for _ in range(SPINS):
                await asyncio.sleep(0)
            back_from_no_answer(routing, world.now)
            routing.route_now()
            for _ in range(SPINS):
                await asyncio.sleep(0)
        await asyncio.sleep(0.2)  # the last actions and events settle
        await ctid.interaction_log.flush()
        written = ctid.interaction_log.written
        ended = sum(len(s.model.ended) for s in ctid.servers.values())
        await ctid.stop()
    await server.stop()
    return {
        "seed": seed,
        "hours": hours,
        "virtual_start": world.now - hours * 3600,
        "calls_ended": ended,
        "events_logged": written,
        "ami_log_bytes": ami_log.stat().st_size,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
