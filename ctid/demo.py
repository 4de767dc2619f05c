"""`ctid demo`: pbxsim with seeded traffic and ctid on the sample config, in one process, no set-up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

from ctid.config import load_config
from ctid.daemon import Ctid
from ctid.errors import ConfigError
from ctid.logging import configure_logging


async def run_demo(config_path: Path, *, seed: int, speed: float, agents: int, calls_per_hour: float) -> int:
    from pbxsim import PbxSimServer, TrafficGenerator, TrafficProfile, World, call_center_site
    from pbxsim.autoroute import AutoRouter

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print("\n".join(exc.errors))
        return 1
    configure_logging(config.log.format, "warning")
    pbx = config.asterisk[0]
    phones = [str(1001 + i) for i in range(agents)]
    world = World(seed=seed, start=time.time(), endpoints=call_center_site(phones))
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
    TrafficGenerator(world, TrafficProfile.flat(calls_per_hour)).start()
    # until ctid routes calls itself, pbxsim's stand-in router hands waiting callers to free phones
    server.observers.append(AutoRouter(world, phones).observe)
    await server.start()
    ctid = Ctid(config)
    await ctid.start()
    base = f"http://{config.web.host}:{ctid.web_port}"
    print(
        f"ctid demo: pbxsim on {pbx.host}:{server.port} ({agents} agent phones, {calls_per_hour:g} calls/h, "
        f"speed {speed:g}), ctid FastAGI on {config.agi.host}:{ctid.ivr.port}\n"
        f"  live calls   {base}/api/calls\n"
        f"  agents       {base}/api/agents\n"
        f"  history      {base}/api/calls/history\n"
        f"  metrics      {base}/metrics\n"
        f"  health       {base}/healthz\n"
        "Ctrl-C stops.",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await ctid.stop()
        await server.stop()
    return 0
