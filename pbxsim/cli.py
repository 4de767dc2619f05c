"""The `pbxsim` command: a simulated Asterisk with call traffic, for ctid demos, benchmarks and tests."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import datetime

from ctid.signals import until_stopped
from pbxsim.server import PbxSimServer
from pbxsim.site import call_center_site, parse_agents
from pbxsim.traffic import TrafficGenerator, TrafficProfile
from pbxsim.world import World


def parse_start(text: str) -> float:
    """`now`, seconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text == "now":
        return float(int(time.time()))
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo)
        return moment.timestamp()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pbxsim", description=__doc__)
    p.add_argument("--ami-host", default="127.0.0.1")
    p.add_argument("--ami-port", type=int, default=5038)
    p.add_argument("--username", default="ctid")
    p.add_argument("--secret", default="ctid")
    p.add_argument("--agi-host", default="127.0.0.1", help="where ctid's FastAGI server listens")
    p.add_argument("--agi-port", type=int, default=4573)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    p.add_argument("--traffic", action=argparse.BooleanOptionalAction, default=True, help="customers call in")
    p.add_argument("--volume", type=float, default=1.0, help="multiplies the hourly call profile")
    p.add_argument("--agents", default="1001-1010", help="agent phones PJSIP/NNNN, e.g. 1001-1010,2001")
    p.add_argument("--trunk", default="trunk", help="SIP endpoint the customers' calls come in on")
    p.add_argument("--start", default="now", help="virtual start time: now, epoch seconds or ISO 8601")
    return p


async def serve(args: argparse.Namespace) -> None:
    agents = parse_agents(args.agents)
    world = World(
        seed=args.seed, start=parse_start(args.start), endpoints=call_center_site(agents, args.trunk)
    )
    server = PbxSimServer(
        world,
        host=args.ami_host,
        port=args.ami_port,
        username=args.username,
        secret=args.secret,
        agi_host=args.agi_host,
        agi_port=args.agi_port,
        speed=args.speed,
    )
    if args.traffic:
        profile = TrafficProfile(volume=args.volume, trunk=args.trunk)
        TrafficGenerator(world, profile).start()
    await server.start()
    print(
        f"pbxsim: AMI on {args.ami_host}:{server.port}, FastAGI to {args.agi_host}:{args.agi_port}, "
        f"{len(agents)} agent phones, speed {args.speed:g}, traffic {'on' if args.traffic else 'off'}",
        flush=True,
    )
    try:
        await until_stopped()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.speed <= 0:
        print("pbxsim: --speed must be positive", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"pbxsim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
