"""The `ctid` command line: run, check-config, init, report, replay, demo, sim-day, bench, user, customers.

Exit codes: 0 done, 1 invalid input (a config error, a bad period), 2 a file that cannot be read or written
(one line on stderr naming it, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_INVALID = 1
EXIT_FILE = 2


class FileProblem(Exception):
    """A file the command needs cannot be read or written; `line` says which and why."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def need_readable(path: Path | str) -> Path:
    """`path` if it can be opened for reading, else FileProblem (missing, a directory, no permission)."""
    path = Path(path)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise FileProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    return path


def open_config_database(config: Path | str) -> Engine | int:
    """The database the ctid.yaml at `config` names, opened; or, having said why on stderr, the exit code
    (a file ctid cannot read is EXIT_FILE, an invalid one EXIT_INVALID)."""
    from ctid.config import load_config
    from ctid.errors import ConfigError
    from reports.log import open_engine

    try:
        loaded = load_config(Path(config))
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return EXIT_FILE if any(": cannot read: " in line for line in exc.errors) else EXIT_INVALID
    return open_engine(loaded.database)


def need_writable(path: Path | str) -> Path:
    """`path` if it can be written (its directory is made), else FileProblem. An existing file is kept."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise FileProblem(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _config_or_sample(given: str | None) -> Path:
    """The ctid.yaml named by -c, or the shipped sample when none is given."""
    from ctid.samples import sample_path

    return need_readable(given) if given else sample_path("ctid.yaml")


def _cmd_run(args: argparse.Namespace) -> int:
    from ctid.config import load_config
    from ctid.daemon import Ctid
    from ctid.errors import ConfigError
    from ctid.logging import configure_logging

    need_readable(args.config)
    try:
        config = load_config(Path(args.config))
        if config.routing is not None:
            need_readable(config.routing)
        configure_logging(config.log.format, config.log.level)
        raw_log = need_writable(args.ami_log) if args.ami_log else None
        daemon = Ctid(config, raw_log=raw_log)  # loads routing.yaml
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 1
    asyncio.run(daemon.run())
    return 0


def _check_one(path: str) -> int:
    """Check one file as the kind whose top-level keys it shares most; print OK or every error."""
    from ruamel.yaml.nodes import MappingNode

    from ctid.config import CtidConfig, file_kind, fold_typos, load_config, top_level_keys
    from ctid.errors import ConfigError
    from ctid.yamlconf import MAX_FILE_BYTES, compose_bounded
    from routing.config import RoutingConfig, load_routing_checked

    try:
        with Path(path).open("rb") as handle:  # no further than the loader reads: a huge file costs nothing
            head = handle.read(MAX_FILE_BYTES + 1).decode("utf-8", "replace")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FILE
    keys = top_level_keys(head)
    if not keys and head.lstrip().startswith("{"):  # a flow-style document: {queues: ...}
        try:
            document = compose_bounded(path, head)
        except ConfigError:  # the loader reports it
            document = None
        if isinstance(document, MappingNode):
            keys = [str(key.value) for key, _ in document.value]
    kinds = {
        "ctid.yaml": frozenset(CtidConfig.model_fields),
        "routing.yaml": frozenset(RoutingConfig.model_fields),
    }
    kind = file_kind(path, keys, kinds)
    if kind.kind is None:
        print(kind.problem, file=sys.stderr)
        return EXIT_INVALID
    try:
        if kind.kind == "ctid.yaml":
            warnings: list[str] = []
            load_config(path)
        else:
            _, warnings = load_routing_checked(Path(path))
    except ConfigError as exc:
        print("\n".join(fold_typos(exc.errors)), file=sys.stderr)
        return EXIT_INVALID
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"OK {path}")
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Each file is checked as a ctid.yaml or a routing.yaml, told apart by its top-level keys."""
    return max(_check_one(path) for path in args.paths)


def _cmd_init(args: argparse.Namespace) -> int:
    from ctid.samples import write_samples

    dest = Path(args.dir)
    try:
        result = write_samples(dest, force=args.force)
    except OSError as exc:
        print(f"{exc.filename or dest}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FILE
    if result.existing:
        for path in result.existing:
            print(f"{path}: exists (nothing written; --force overwrites)", file=sys.stderr)
        return EXIT_INVALID
    for path in result.written:
        print(f"wrote {path}")
    config = shlex.quote(str(dest / "ctid.yaml"))
    print(
        f"next: edit them, then `ctid check-config {config} {shlex.quote(str(dest / 'routing.yaml'))}`"
        f" and `ctid run -c {config}` (or try `ctid demo -c {config}`)"
    )
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from ctid.replay import replay_file

    replayer = replay_file(need_readable(args.file))
    json.dump(replayer.calls(), sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ctid.tooling.demo import run_demo

    return asyncio.run(
        run_demo(
            _config_or_sample(args.config),
            seed=args.seed,
            speed=args.speed,
            calls_per_hour=args.calls_per_hour,
        )
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from ctid.logging import configure_logging
    from ctid.tooling.bench import run_bench

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
    from reports.report import ReportError, render, run_report
    from routing.config import load_routing

    url = args.db
    settings = KpiSettings()
    targets = None
    config_path = Path(args.config)
    if url is None or config_path.exists():
        need_readable(config_path)
        try:
            config = load_config(config_path)
            targets = config.reports.target_bounds()
            settings = KpiSettings(short_abandon_s=config.wallboard.short_abandon_s)
            routing = args.routing or config.routing
        except ConfigError as exc:
            print("\n".join(exc.errors), file=sys.stderr)
            return EXIT_INVALID
        url = url or config.database
    else:
        routing = args.routing
    if routing is not None:  # each queue's service level threshold T
        try:
            queues = load_routing(need_readable(Path(routing))).queues
        except ConfigError as exc:
            print("\n".join(exc.errors), file=sys.stderr)
            return EXIT_INVALID
        thresholds = {n: q.service_level.threshold_s for n, q in queues.items()}
        settings = replace(settings, service_level_s=thresholds)
    database = sqlite_file(url)
    if database is not None:  # a report reads; opening a missing SQLite file would create an empty log
        need_readable(database)
    output = need_writable(args.output) if args.output else None
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
        summary = result if args.name == "queue-summary" else None
        if summary is None:
            summary = run_report("queue-summary", url, start=start, end=end, settings=settings)
        text = render(args.name, result, args.format, args.timezone)
    except (ReportError, ValueError, ZoneInfoNotFoundError) as exc:  # too large (the message says the limit),
        print(f"report: {exc}", file=sys.stderr)  # an unknown --timezone too
        return EXIT_INVALID
    if not sum(row["offered"] for row in summary):
        print(f"report: {no_contacts(start, end, args.timezone, url)}", file=sys.stderr)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def no_contacts(start: float, end: float, zone: str, url: str) -> str:
    """The line saying a period has no contacts, naming the period (as --from/--to) and the database."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy.engine import make_url

    def shown(moment: float) -> str:
        return datetime.fromtimestamp(moment, ZoneInfo(zone)).isoformat(timespec="seconds")

    database = make_url(url).render_as_string(hide_password=True)
    return f"no contacts from {shown(start)} to {shown(end)} ({zone}) in {database}"


def _cmd_sim_day(args: argparse.Namespace) -> int:
    from ctid.errors import ConfigError
    from ctid.logging import configure_logging
    from ctid.tooling.simday import DEFAULT_ROUTING, report_period, sim_day

    configure_logging("console", "warning")
    routing_path = need_readable(args.routing) if args.routing else DEFAULT_ROUTING
    database = sqlite_file(args.db)
    if database is not None:
        need_writable(database)  # its directory made (./var by default)
    ami_log = need_writable(args.ami_log)
    try:
        result = asyncio.run(
            sim_day(
                seed=args.seed,
                hours=args.hours,
                db_url=args.db,
                ami_log=ami_log,
                routing_path=routing_path,
                calls_per_hour=args.calls_per_hour,
            )
        )
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return EXIT_INVALID
    period = report_period(routing_path, result["virtual_start"], args.hours)
    # the queues' service-level thresholds are the simulated routing.yaml's
    result["report"] = ["--db", args.db, *period, "--routing", str(routing_path.resolve())]
    print(json.dumps(result))
    where = f" (the log is {database.resolve()})" if database is not None else ""
    print(
        f"sim-day: report on it with: ctid report queue-summary {shlex.join(result['report'])}{where}",
        file=sys.stderr,
    )
    return 0


def _control(args: argparse.Namespace, what: str, at: str | None = None) -> int:
    from ctid.control import control_command

    return control_command(args.config, what, at)


def build_parser() -> argparse.ArgumentParser:
    from ctid.auth.cli import add_user_commands
    from ctid.customers.cli import add_customer_commands
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

    init = sub.add_parser("init", help="write an editable copy of the sample configuration into DIR")
    init.add_argument("dir")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    init.set_defaults(func=_cmd_init)

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
    report.add_argument(
        "--routing", help="routing.yaml whose queues' service-level thresholds apply (default: -c's)"
    )
    report.add_argument("-c", "--config", default="config/ctid.yaml")
    report.add_argument("--interval", type=int, choices=[15, 30, 60], default=30, help="minutes")
    report.add_argument("--timezone", default="UTC", help="for dates without a zone and hours of day")
    report.add_argument("--format", choices=["table", "csv", "json", "html"], default="table")
    report.add_argument("--output", help="write here instead of standard output")
    report.set_defaults(func=_cmd_report)

    simday = sub.add_parser("sim-day", help="pbxsim and ctid together in virtual time, logged to a database")
    simday.add_argument("--seed", type=int, default=1)
    simday.add_argument("--hours", type=float, default=8.0)
    simday.add_argument("--db", default="sqlite:///var/sim-day.db", help="(default: ./var/sim-day.db)")
    simday.add_argument("--ami-log", default="var/sim-day.ami")
    simday.add_argument("--routing", default=None, help="routing.yaml (default: the shipped sample)")
    simday.add_argument("--calls-per-hour", type=float, default=60.0)
    simday.set_defaults(func=_cmd_sim_day)

    replay = sub.add_parser("replay", help="fold a recorded AMI stream and print the calls as JSON")
    replay.add_argument("file")
    replay.set_defaults(func=_cmd_replay)

    demo = sub.add_parser("demo", help="run pbxsim and ctid together")
    demo.add_argument(
        "-c",
        "--config",
        default=None,
        help="ctid.yaml (default: the shipped sample, logging to ./var/ctid.db)",
    )
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    demo.add_argument("--calls-per-hour", type=float, default=60.0)
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks, printing JSON")
    bench.add_argument("what", choices=["ingest", "routing", "reports", "screenpop"])
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--events", type=int, default=200_000)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--rate", type=float, default=20_000, help="events/s for the latency phase")
    bench.add_argument("--rounds", type=int, default=5, help="throughput rounds (medians reported)")
    bench.add_argument(
        "--agents",
        type=int,
        default=None,
        help="routing: agents in the center (100); screenpop: logged in (2,000)",
    )
    bench.add_argument("--load", type=float, default=0.95, help="routing: offered load per agent (rho)")
    bench.add_argument("--mix", default="0.10,0.30,0.60", help="routing: shares of tiers A,B,C")
    bench.add_argument("--hours", type=float, default=8.0, help="routing: hours of simulated traffic")
    bench.add_argument(
        "--seeds", default=None, help="routing: many seeds (1-24 or 1,5,9), ctid against FIFO on each"
    )
    bench.add_argument("--calls", type=int, default=1_000_000, help="reports: calls in the 30-day log")
    bench.add_argument(
        "--databases", default=None, help="reports (sqlite,postgresql), screenpop (sqlite): which databases"
    )
    bench.add_argument("--customers", type=int, default=200_000, help="screenpop: customers in the book")
    bench.add_argument("--calls-per-s", type=float, default=50.0, help="screenpop: callers arriving a second")
    bench.add_argument("--seconds", type=float, default=60.0, help="screenpop: seconds of arrivals")
    bench.set_defaults(func=_cmd_bench)
    add_user_commands(sub)
    add_customer_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except FileProblem as exc:
        print(exc.line, file=sys.stderr)
        return EXIT_FILE
    except OSError as exc:  # a file or address no check above foresaw: still one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else f"ctid {args.command}: "
        print(f"{where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FILE


if __name__ == "__main__":
    sys.exit(main())
