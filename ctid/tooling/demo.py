"""`ctid demo`: pbxsim with seeded traffic and ctid on the sample config, in one process, no set-up."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ctid.agents import AgentState
from ctid.auth.store import create_demo_users
from ctid.config import load_config
from ctid.daemon import Ctid
from ctid.errors import ConfigError
from ctid.logging import configure_logging
from ctid.signals import until_stopped
from ivr.component import IvrComponent
from routing.component import RoutingComponent
from routing.config import RoutingConfig, is_open, load_routing


def open_hours_start(cfg: RoutingConfig, now: float) -> float:
    """The latest moment at or before `now` when every queue is open, so the demo's callers are routed."""
    when = now
    for _ in range(14 * 24):
        stamp = datetime.fromtimestamp(when, UTC)
        if all(is_open(cfg, queue, stamp) for queue in cfg.queues):
            return when
        when -= 3600
    return now


def where_logged(url: str) -> str:
    """The interaction log's database as the banner shows it: a SQLite file by its absolute path (the
    sample's `sqlite:///var/ctid.db` is relative to the directory ctid was started in)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return (
            f"{Path(parsed.database).resolve()} (ctid report queue-summary --db sqlite:///{parsed.database})"
        )
    return parsed.render_as_string(hide_password=True)


async def run_demo(config_path: Path, *, seed: int, speed: float, calls_per_hour: float) -> int:
    from pbxsim import PbxSimServer, TrafficGenerator, TrafficProfile, World, WorldClock, call_center_site

    try:
        config = load_config(config_path)
        if config.routing is None:
            print(f"{config_path}: the demo needs a routing file (routing: routing.yaml)", file=sys.stderr)
            return 1
        routing_cfg = load_routing(config.routing)
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2 if any(": cannot read: " in line for line in exc.errors) else 1
    configure_logging(config.log.format, "warning")
    pbx = config.asterisk[0]
    # pbxsim plays the agents' phones of routing.yaml (PJSIP/1001 ...), and runs on office hours
    phones = [a.device.split("/", 1)[1] for a in routing_cfg.agents if a.device.startswith("PJSIP/")]
    start = open_hours_start(routing_cfg, time.time())
    world = World(seed=seed, start=start, endpoints=call_center_site(phones))
    server = PbxSimServer(
        world,
        host=pbx.host,
        port=pbx.port,
        username=pbx.username,
        secret=pbx.secret.get_secret_value(),
        agi_host=config.agi.host,
        agi_port=config.agi.port,
        speed=speed,
    )
    dids = tuple(routing_cfg.dnis) or ("4000",)
    TrafficGenerator(world, replace(TrafficProfile.flat(calls_per_hour), dids=dids)).start()
    await server.start()
    ctid = Ctid(config, clock=WorldClock(world))  # the demo's Asterisk keeps the simulated time
    await ctid.start()
    await ctid.wait_synced()
    for agent in routing_cfg.agents:  # every agent logs in at the start of the shift
        ctid.component(RoutingComponent).service.set_agent_state(agent.id, AgentState.READY)
    base = f"http://{config.web.host}:{ctid.web_port}"
    users = create_demo_users(ctid.context.engine, [a.id for a in routing_cfg.agents], time.time)
    print(
        f"ctid demo: pbxsim on {pbx.host}:{server.port} ({len(phones)} agent phones, "
        f"{calls_per_hour:g} calls/h, speed {speed:g}), ctid FastAGI on "
        f"{config.agi.host}:{ctid.component(IvrComponent).port}\n"
        f"  live calls   {base}/api/calls\n"
        f"  wallboard    {base}/wallboard\n"
        f"  queues       {base}/api/queues\n"
        f"  agents       {base}/api/agents\n"
        f"  history      {base}/api/calls/history\n"
        f"  metrics      {base}/metrics\n"
        f"  health       {base}/healthz\n"
        f"  config       {config_path}\n"
        f"  log          {where_logged(config.database)}\n"
        f"  log in at    {base}/login as (passwords new on each demo run):\n"
        + "".join(f"    {name:<12} {role:<11} {password}\n" for name, role, password in users)
        + "Ctrl-C stops.",
        flush=True,
    )
    try:
        await until_stopped()
    finally:
        await ctid.stop()
        await server.stop()
    return 0
