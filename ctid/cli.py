"""The `ctid` command line: run, check-config, replay, demo, bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path


def _cmd_run(args: argparse.Namespace) -> int:
    from ctid.config import load_config
    from ctid.daemon import Ctid
    from ctid.errors import ConfigError
    from ctid.logging import configure_logging

    try:
        config = load_config(Path(args.config))
        configure_logging(config.log.format, config.log.level)
        daemon = Ctid(config, raw_log=Path(args.ami_log) if args.ami_log else None)  # loads routing.yaml
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 1
    asyncio.run(daemon.run())
    return 0


def _is_routing_file(path: str) -> bool:
    """routing.yaml files have top-level `queues:`; everything else is checked as ctid.yaml."""
    from ctid.yamlconf import MAX_FILE_BYTES

    try:
        with Path(path).open("rb") as handle:  # no further than the loader reads: a huge file costs nothing
            head = handle.read(MAX_FILE_BYTES + 1)
    except OSError:  # then checked as ctid.yaml, which reports why it is unreadable
        return False
    return any(line.startswith(b"queues:") for line in head.splitlines())


def _cmd_check_config(args: argparse.Namespace) -> int:
    from ctid.config import check_config_command
    from ctid.errors import ConfigError
    from routing.config import load_routing_checked

    status = 0
    others = [p for p in args.paths if not _is_routing_file(p)]
    if others:
        status = check_config_command(others)
    for path in (p for p in args.paths if _is_routing_file(p)):
        try:
            _, warnings = load_routing_checked(Path(path))
        except ConfigError as exc:
            print("\n".join(exc.errors), file=sys.stderr)
            status = 1
            continue
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"OK {path}")
    return status


def _cmd_replay(args: argparse.Namespace) -> int:
    from ctid.replay import replay_file

    replayer = replay_file(Path(args.file))
    json.dump(replayer.calls(), sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ctid.demo import run_demo

    return asyncio.run(
        run_demo(
            Path(args.config),
            seed=args.seed,
            speed=args.speed,
            calls_per_hour=args.calls_per_hour,
        )
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from ctid.bench import run_bench
    from ctid.logging import configure_logging

    configure_logging("console", "warning")  # stdout carries only the JSON
    result = run_bench(args.what, args)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


def _when(text: str | None, zone: str, default: float) -> float:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if not text:
        return default
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.timestamp()


def _cmd_report(args: argparse.Namespace) -> int:
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from ctid.config import load_config
    from ctid.errors import ConfigError
    from reports.kpi import KpiSettings
    from reports.report import ReportError, ReportTooLarge, render, run_report
    from routing.config import load_routing

    url = args.db
    settings = KpiSettings()
    targets = None
    config_path = Path(args.config)
    if url is None or config_path.exists():
        try:
            config = load_config(config_path)
            targets = config.reports.target_bounds()
            if config.routing is not None:  # each queue's service level threshold T
                queues = load_routing(config.routing).queues
                settings = KpiSettings(
                    short_abandon_s=config.wallboard.short_abandon_s,
                    service_level_s={n: q.service_level.threshold_s for n, q in queues.items()},
                )
        except ConfigError as exc:
            print("\n".join(exc.errors), file=sys.stderr)
            return 1
        url = url or config.database
    now = time.time()
    try:
        midnight = datetime.now(ZoneInfo(args.timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
        start = _when(args.start, args.timezone, midnight.timestamp())
        end = _when(args.end, args.timezone, now)
        result = run_report(
            args.name,
            url,
            start=start,
            end=end,
            queue=args.queue,
            agent=args.agent,
            interval_s=args.interval * 60,
            timezone=args.timezone,
            settings=settings,
            targets=targets,
        )
        text = render(args.name, result, args.format, args.timezone)
    except ReportTooLarge as exc:  # over the bounds on one report's work: the message states the limit
        print(f"report: {exc}", file=sys.stderr)
        return 2
    except (ReportError, ValueError, ZoneInfoNotFoundError) as exc:  # an unknown --timezone too
        print(f"report: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _cmd_sim_day(args: argparse.Namespace) -> int:
    from ctid.daemon import ensure_sqlite_directory
    from ctid.logging import configure_logging
    from ctid.simday import DEFAULT_ROUTING, sim_day

    configure_logging("console", "warning")
    ensure_sqlite_directory(args.db)
    ami_log = Path(args.ami_log)
    ami_log.parent.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(
        sim_day(
            seed=args.seed,
            hours=args.hours,
            db_url=args.db,
            ami_log=ami_log,
            routing_path=Path(args.routing) if args.routing else DEFAULT_ROUTING,
            calls_per_hour=args.calls_per_hour,
        )
    )
    print(json.dumps(result))
    return 0


def _control(args: argparse.Namespace, what: str, at: str | None = None) -> int:
    from ctid.control import control_command

    return control_command(args.config, what, at)


def build_parser() -> argparse.ArgumentParser:
    from reports.report import REPORTS

    parser = argparse.ArgumentParser(
        prog="ctid", description="Call-center CTI and contact routing for Asterisk"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", default="config/ctid.yaml")
    run.add_argument("--ami-log", help="append the raw AMI bytes received to this file")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate configuration files")
    check.add_argument("paths", nargs="+")
    check.set_defaults(func=_cmd_check_config)

    reload = sub.add_parser("reload", help="make the running daemon re-read routing.yaml")
    reload.add_argument("-c", "--config", default="config/ctid.yaml")
    reload.set_defaults(func=lambda a: _control(a, "reload"))

    config_cmd = sub.add_parser("config", help="routing.yaml versions of the running daemon")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    history = config_sub.add_parser("history", help="applied versions, newest first")
    history.add_argument("-c", "--config", default="config/ctid.yaml")
    history.add_argument("--at", help="the version in force at this time (ISO or epoch seconds)")
    history.set_defaults(func=lambda a: _control(a, "history", a.at))
    rollback = config_sub.add_parser("rollback", help="restore the version before the current one")
    rollback.add_argument("-c", "--config", default="config/ctid.yaml")
    rollback.set_defaults(func=lambda a: _control(a, "rollback"))

    report = sub.add_parser("report", help="a KPI report over the interaction log")
    report.add_argument("name", choices=REPORTS)
    report.add_argument("--from", dest="start", help="ISO date or time (default: today's midnight)")
    report.add_argument("--to", dest="end", help="ISO date or time (default: now)")
    report.add_argument("--queue")
    report.add_argument("--agent")
    report.add_argument("--db", help="SQLAlchemy URL (default: database of the ctid.yaml given by -c)")
    report.add_argument("-c", "--config", default="config/ctid.yaml")
    report.add_argument("--interval", type=int, choices=[15, 30, 60], default=30, help="minutes")
    report.add_argument("--timezone", default="UTC", help="for dates without a zone and hours of day")
    report.add_argument("--format", choices=["table", "csv", "json", "html"], default="table")
    report.add_argument("--output", help="write here instead of standard output")
    report.set_defaults(func=_cmd_report)

    simday = sub.add_parser("sim-day", help="pbxsim and ctid together in virtual time, logged to a database")
    simday.add_argument("--seed", type=int, default=1)
    simday.add_argument("--hours", type=float, default=8.0)
    simday.add_argument("--db", default="sqlite:///var/sim-day.db")
    simday.add_argument("--ami-log", default="var/sim-day.ami")
    simday.add_argument("--routing", default=None, help="routing.yaml (default: config/routing.yaml)")
    simday.add_argument("--calls-per-hour", type=float, default=60.0)
    simday.set_defaults(func=_cmd_sim_day)

    replay = sub.add_parser("replay", help="fold a recorded AMI stream and print the calls as JSON")
    replay.add_argument("file")
    replay.set_defaults(func=_cmd_replay)

    demo = sub.add_parser("demo", help="run pbxsim and ctid together")
    demo.add_argument("-c", "--config", default="config/ctid.yaml")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    demo.add_argument("--calls-per-hour", type=float, default=60.0)
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks, printing JSON")
    bench.add_argument("what", choices=["ingest", "routing", "reports"])
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--events", type=int, default=200_000)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--rate", type=float, default=20_000, help="events/s for the latency phase")
    bench.add_argument("--rounds", type=int, default=5, help="throughput rounds (medians reported)")
    bench.add_argument("--agents", type=int, default=100, help="routing: agents in the simulated center")
    bench.add_argument("--load", type=float, default=0.95, help="routing: offered load per agent (rho)")
    bench.add_argument("--mix", default="0.10,0.30,0.60", help="routing: shares of tiers A,B,C")
    bench.add_argument("--hours", type=float, default=8.0, help="routing: hours of simulated traffic")
    bench.add_argument(
        "--seeds", default=None, help="routing: many seeds (1-24 or 1,5,9), ctid against FIFO on each"
    )
    bench.add_argument("--calls", type=int, default=1_000_000, help="reports: calls in the 30-day log")
    bench.add_argument(
        "--databases", default="sqlite,postgresql", help="reports: which databases to load and time"
    )
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
