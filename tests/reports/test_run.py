"""`ctid report` and `GET /api/reports/NAME` over a small log built from real domain events, checked by hand.

The hour under report is 09:00-10:00 UTC. Agents log in at 08:00 and one call is still being talked at
09:00, so the figures also check the lead-in rows read before the period; a call of 08:30 is the previous
period the KPI trend compares with.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, insert

from ctid.cli import main
from ctid.config import ReportSettings
from ctid.state import domain as d
from ctid.web import make_app
from reports.component import ReportsComponent
from reports.log import CallSummary, DataGap, InteractionEvent, event_row, open_engine, upgrade_database
from reports.report import FORMATS, REPORTS, render, run_report
from reports.store import rebuild
from routing.config import load_routing
from tests.auth_rig import bearer, fake_auth

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp()
END = START + 3600
A1, A2 = "PJSIP/1001", "PJSIP/1002"
AGENTS = {A1: "alice", A2: "bob"}
REQUIRED = (
    "queue",
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "deflected",
    "abandon_rate",
    "service_level",
    "asa_s",
    "p90_wait_s",
    "longest_wait_s",
)


def at(hh: int, mm: int, ss: float = 0) -> float:
    return datetime(2026, 11, 20, hh, mm, tzinfo=UTC).timestamp() + ss


class Day:
    """Domain events as ctid's state model and routing publish them, one call story at a time."""

    def __init__(self) -> None:
        self.events: list[tuple[int, d.DomainEvent]] = []

    def add(self, event: d.DomainEvent) -> None:
        self.events.append((len(self.events), event))

    def state(self, when: float, device: str, state: str, previous: str, linkedid: str = "") -> None:
        self.add(d.AgentStateChanged(when, linkedid, AGENTS[device], device, state, "", previous))

    def arrive(self, call: str, when: float, queue: str, dnis: str = "5550100") -> None:
        self.add(d.CallArrived(when - 10, call, call, "PJSIP/trunk-1", d.Direction.INBOUND, "0600", "", dnis))
        self.add(d.CallVariable(when - 1, call, "CTID_TIER", "B"))
        self.add(d.CallWaiting(when, call, call, queue, when, False))

    def answer(self, call: str, arrive: float, wait: float, device: str, queue: str, talk: float) -> None:
        """Answered after `wait`, talked `talk` s, then 20 s of wrap-up before ready again."""
        connected = arrive + wait
        self.state(connected - 4, device, "reserved", "ready", call)
        self.add(d.AgentRinging(connected - 4, call, call, device, f"{device}-1", queue))
        self.add(d.CallConnected(connected, call, device, f"{device}-1", queue, wait))
        self.state(connected, device, "on_call", "reserved", call)
        self.add(d.AgentLeftCall(connected + talk, call, device))
        self.add(d.CallEnded(connected + talk, call, 16, "caller", "answered"))
        self.state(connected + talk, device, "wrap_up", "on_call", call)
        self.state(connected + talk + 20, device, "ready", "wrap_up", call)

    def abandon(self, call: str, arrive: float, wait: float, queue: str) -> None:
        self.add(d.CallAbandoned(arrive + wait, call, queue, wait, False))
        self.add(d.CallEnded(arrive + wait, call, 16, "caller", "abandoned"))

    def deflect(self, call: str, arrive: float, wait: float, queue: str, to: str) -> None:
        self.add(d.CallDeflected(arrive + wait, call, queue, to, "max_wait", wait))
        self.add(d.CallEnded(arrive + wait, call, 16, "system", "deflected"))

    def rows(self) -> list[dict[str, Any]]:
        """The log's rows, queue and tier filled from each call's summary as InteractionLog does."""
        calls: dict[str, CallSummary] = {}
        out = []
        for seq, event in sorted(self.events, key=lambda pair: (pair[1].at, pair[0])):
            agent_event = isinstance(event, d.AgentStateChanged)
            call = (
                None if agent_event else calls.setdefault(event.linkedid, CallSummary("pbx1", event.linkedid))
            )
            out.append({"event_id": f"run:pbx1:{seq}", **event_row("pbx1", event, call)})
        return out


def build_day() -> Day:
    day = Day()
    for device in (A1, A2):
        day.state(at(8, 0), device, "ready", "logged_out")
    # previous period: one call, answered after 20 s (within T)
    day.arrive("c0", at(8, 30), "sales")
    day.answer("c0", at(8, 30), 20, A2, "sales", 60)
    # arrived before the period, talked across 09:00: not offered in the hour, but handled in it
    day.arrive("c9", at(8, 59), "sales")
    day.answer("c9", at(8, 59), 20, A1, "sales", 160)
    # the hour: sales offered 5 (2 answered, 2 abandoned of which 1 short, 1 callback); support 1
    day.arrive("c1", at(9, 5), "sales")
    day.answer("c1", at(9, 5), 10, A1, "sales", 170)
    day.arrive("c2", at(9, 10), "sales")
    day.answer("c2", at(9, 10), 40, A2, "sales", 260)
    day.arrive("c3", at(9, 20), "sales")
    day.abandon("c3", at(9, 20), 3, "sales")
    day.arrive("c4", at(9, 25), "sales")
    day.abandon("c4", at(9, 25), 60, "sales")
    day.arrive("c5", at(9, 30), "sales")
    day.deflect("c5", at(9, 30), 30, "sales", "callback")
    day.arrive("c6", at(9, 40), "support", dnis="5550200")
    day.answer("c6", at(9, 40), 5, A1, "support", 95)
    return day


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report')}/log.db"
    upgrade_database(url)
    engine = open_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(InteractionEvent), build_day().rows())
        rebuild(connection)  # rows put straight into the log: fold them as the writer would have
        # ctid lost pbx1 for two minutes in the hour: every report must say so
        connection.execute(insert(DataGap), [{"server": "pbx1", "start": at(9, 50), "end": at(9, 52)}])
    engine.dispose()
    return url


@pytest.fixture()
def engine(db: str) -> Iterator[Engine]:
    engine = open_engine(db)
    yield engine
    engine.dispose()


def cli_json(db: str, *args: str, config: str = "no-such-ctid.yaml") -> Any:
    """`ctid report ... --format json` run as a user runs it, in its own process.

    No ctid.yaml by default: the sample config/ctid.yaml would give the queues its routing.yaml's T.
    """
    command = [sys.executable, "-m", "ctid.cli", "report", *args, "--format", "json", "--config", config]
    if db:
        command += ["--db", db]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


# ---- the CLI ------------------------------------------------------------------------------------------


def test_cli_queue_summary_json_has_the_required_keys_and_the_right_numbers(db: str) -> None:
    summary = cli_json(db, "queue-summary", "--from", "2026-11-20T09:00", "--to", "2026-11-20T10:00")
    assert isinstance(summary, list)
    assert [q["queue"] for q in summary] == ["sales", "support"]
    for queue in summary:
        assert set(REQUIRED) <= set(queue)
    sales, support = by(summary, "queue")["sales"], by(summary, "queue")["support"]
    assert {k: sales[k] for k in REQUIRED[1:6]} == {
        "offered": 5,  # c9 arrived at 08:59, before the hour
        "answered": 2,
        "abandoned": 2,
        "short_abandoned": 1,
        "deflected": 1,
    }
    assert sales["abandon_rate"] == pytest.approx(1 / 3)  # c4 / (5 - 1 short - 1 deflected)
    assert sales["service_level"] == pytest.approx(1 / 3)  # c1 / (2 answered + c4 past 20 s)
    assert sales["asa_s"] == pytest.approx(25.0)
    assert sales["p90_wait_s"] == pytest.approx(40.0)
    assert sales["longest_wait_s"] == pytest.approx(60.0)
    assert (support["offered"], support["answered"], support["service_level"]) == (1, 1, 1.0)
    assert support["asa_s"] == pytest.approx(5.0)
    assert sales["data_gaps"] == [{"server": "pbx1", "start": at(9, 50), "end": at(9, 52)}]


def test_cli_dates_are_local_midnights_of_the_timezone(db: str) -> None:
    """A date alone is midnight in --timezone: 2026-11-20 in Tokyo ends at 15:00 UTC, after the calls."""
    tokyo = cli_json(
        db, "queue-summary", "--from", "2026-11-20", "--to", "2026-11-21", "--timezone", "Asia/Tokyo"
    )
    assert sum(q["offered"] for q in tokyo) == 8  # c0 and c9 too
    honolulu = cli_json(
        db, "queue-summary", "--from", "2026-11-20", "--to", "2026-11-21", "--timezone", "Pacific/Honolulu"
    )
    assert honolulu == []  # 2026-11-20 starts at 10:00 UTC there


def test_cli_reads_the_database_and_each_queues_t_from_ctid_yaml(db: str, tmp_path: Path) -> None:
    """Without --db the report reads the `database` of --config, and its routing.yaml gives each queue's T."""
    sample = (ROOT / "config" / "ctid.yaml").read_text(encoding="utf-8")
    lines = [f"database: {db}" if line.startswith("database:") else line for line in sample.splitlines()]
    (tmp_path / "ctid.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "routing.yaml").write_bytes((ROOT / "config" / "routing.yaml").read_bytes())
    period = ["--from", "2026-11-20T09:00:00+00:00", "--to", "2026-11-20T10:00:00+00:00"]
    summary = by(cli_json("", "queue-summary", *period, config=str(tmp_path / "ctid.yaml")), "queue")
    queues = load_routing(tmp_path / "routing.yaml").queues
    for name in ("sales", "support"):
        assert summary[name]["service_level_s"] == queues[name].service_level.threshold_s
    assert summary["sales"]["offered"] == 5


def test_cli_kpi_targets_come_from_ctid_yaml(db: str, tmp_path: Path) -> None:
    """The `reports.targets` of ctid.yaml are what `ctid report kpi` holds the actuals against."""
    sample = (ROOT / "config" / "ctid.yaml").read_text(encoding="utf-8")
    ours = "reports:\n  targets:\n    service_level: {min: 0.4}\n    asa_s: {max: 20}\n"
    sample = re.sub(r"^reports:\n(  .*\n)+", ours, sample, flags=re.MULTILINE)
    assert ours in sample
    lines = [f"database: {db}" if line.startswith("database:") else line for line in sample.splitlines()]
    (tmp_path / "ctid.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "routing.yaml").write_bytes((ROOT / "config" / "routing.yaml").read_bytes())
    period = ["--from", "2026-11-20T09:00:00+00:00", "--to", "2026-11-20T10:00:00+00:00"]
    result = cli_json("", "kpi", *period, config=str(tmp_path / "ctid.yaml"))
    targets = by(result["targets"], "kpi")
    assert set(targets) == {"service_level", "asa_s"}
    assert targets["service_level"]["target"] == {"min": 0.4}
    assert targets["asa_s"]["target"] == {"max": 20.0}
    assert targets["asa_s"]["actual"] is not None and targets["asa_s"]["met"] == (
        targets["asa_s"]["actual"] <= 20
    )


def test_cli_writes_output_and_refuses_bad_periods(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    period = ["--from", "2026-11-20T09:00:00+00:00", "--to", "2026-11-20T10:00:00+00:00"]
    assert (
        main(["report", "queue-summary", *period, "--db", db, "--format", "html", "--output", str(out)]) == 0
    )
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert main(["report", "kpi", "--from", "2026-11-20T10:00", "--to", "2026-11-20T09:00", "--db", db]) == 1
    assert "after" in capsys.readouterr().err
    assert main(["report", "kpi", "--from", "yesterday", "--db", db]) == 1
    assert main(["report", "kpi", "--timezone", "Nowhere/Land", "--db", db]) == 1
    assert "Nowhere/Land" in capsys.readouterr().err


# ---- the reports ----------------------------------------------------------------------------------------


def test_agents_count_the_call_in_progress_at_the_start(engine: Engine) -> None:
    """Alice's 08:59 call is handled in the hour and its talk after 09:00 is hers: the lead-in at work."""
    agents = by(run_report("agent-performance", engine, start=START, end=END), "agent")
    alice, bob = agents["alice"], agents["bob"]
    assert (alice["handled"], bob["handled"]) == (3, 1)  # c9, c1, c6; c2
    assert alice["talk_s"] == pytest.approx(120 + 170 + 95)  # c9 from 09:00 to 09:02, c1, c6
    assert bob["talk_s"] == pytest.approx(260)
    assert alice["login_s"] == pytest.approx(3600) and bob["login_s"] == pytest.approx(3600)
    assert alice["wrap_s"] == pytest.approx(60)
    ranked = run_report("agent-comparison", engine, start=START, end=END)
    assert [a["agent"] for a in ranked] == ["alice", "bob"]


def test_interval_report_splits_the_hour(engine: Engine) -> None:
    rows = run_report("interval", engine, start=START, end=END, interval_s=900)
    offered = {(r["interval_start"], r["queue"]): r["offered"] for r in rows}
    assert offered == {
        (START, "sales"): 2,
        (START, "support"): 0,
        (START + 900, "sales"): 2,
        (START + 900, "support"): 0,
        (START + 1800, "sales"): 1,
        (START + 1800, "support"): 1,
        (START + 2700, "sales"): 0,
        (START + 2700, "support"): 0,
    }


def test_kpi_targets_against_the_previous_hour(engine: Engine) -> None:
    result = run_report("kpi", engine, start=START, end=END)
    kpis = by(result["targets"], "kpi")
    assert set(kpis) == {"service_level", "abandon_rate", "asa_s", "occupancy"}
    sl = kpis["service_level"]
    assert sl["actual"] == pytest.approx(0.5)  # c1, c6 within 20 s / (3 answered + c4)
    assert (sl["previous"], sl["met"], sl["trend"], sl["trend_is"]) == (1.0, False, "down", "worse")
    asa = kpis["asa_s"]
    assert asa["actual"] == pytest.approx(55 / 3) and asa["previous"] == pytest.approx(20.0)
    assert (asa["met"], asa["trend_is"]) == (True, "better")
    abandon = kpis["abandon_rate"]
    assert (abandon["actual"], abandon["previous"], abandon["met"]) == (0.25, 0.0, False)
    assert kpis["occupancy"]["actual"] is not None
    assert result["data_gaps"]


def test_targets_are_configurable(engine: Engine) -> None:
    result = run_report("kpi", engine, start=START, end=END, targets={"service_level": {"min": 0.4}})
    assert [(t["kpi"], t["met"]) for t in result["targets"]] == [("service_level", True)]


@pytest.mark.parametrize("name", REPORTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_report_renders_in_every_format(engine: Engine, name: str, fmt: str) -> None:
    result = run_report(name, engine, start=START, end=END, interval_s=900)
    text = render(name, result, fmt)
    assert text.strip()
    if fmt == "json":
        assert json.loads(text) == result
    elif fmt == "csv":
        table = list(csv.reader(io.StringIO(text)))
        assert len(table) >= 2 and all(len(row) == len(table[0]) for row in table)
    elif fmt == "table":
        assert len(text.splitlines()) >= 2
    else:
        assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
        assert "http://" not in text and "https://" not in text  # one file a manager can email
        assert "<script" not in text and "<link" not in text
        if name != "kpi":
            assert "<svg" in text


@pytest.mark.parametrize("name", REPORTS)
def test_data_gaps_are_shown_in_table_and_html(engine: Engine, name: str) -> None:
    """The hour has a gap 09:50-09:52: nobody should read it as two quiet minutes."""
    result = run_report(name, engine, start=START, end=END, interval_s=900)
    assert "data gaps" in render(name, result, "table").lower()
    assert 'class="gap"' in render(name, result, "html")


def test_table_formats_ratios_as_percentages_and_seconds_with_one_decimal(engine: Engine) -> None:
    text = render("queue-summary", run_report("queue-summary", engine, start=START, end=END), "table")
    sales = next(line for line in text.splitlines() if line.startswith("sales"))
    assert "33.3%" in sales and "25.0" in sales and "0.333" not in sales


def test_csv_keeps_nested_values_as_json(engine: Engine) -> None:
    result = run_report("agent-performance", engine, start=START, end=END)
    rows = list(csv.DictReader(io.StringIO(render("agent-performance", result, "csv"))))
    assert [row["agent"] for row in rows] == ["alice", "bob"]
    assert json.loads(rows[0]["devices"]) == [A1]
    assert json.loads(rows[0]["pause_by_reason"]) == {}


def test_html_escapes_what_the_log_holds(engine: Engine) -> None:
    result = run_report("queue-summary", engine, start=START, end=END)
    result[0]["queue"] = "<script>alert(1)</script>"
    page = render("queue-summary", result, "html")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_queue_and_agent_filters(engine: Engine) -> None:
    only_sales = run_report("queue-summary", engine, start=START, end=END, queue="sales")
    assert [q["queue"] for q in only_sales] == ["sales"]
    only_bob = run_report("agent-performance", engine, start=START, end=END, agent="bob")
    assert [a["agent"] for a in only_bob] == ["bob"]


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("agent-performance", {"queue": "sales"}),
        ("queue-summary", {"agent": "alice"}),
        ("durations", {"queue": "sales"}),
        ("kpi", {"agent": "alice"}),
    ],
)
def test_a_filter_a_report_cannot_apply_is_refused_not_ignored(
    engine: Engine, name: str, option: dict[str, str]
) -> None:
    """--queue on an agent report (or --agent on a queue report) must neither empty the report nor be
    dropped without a word: the report applies it or refuses it."""
    try:
        filtered = run_report(name, engine, start=START, end=END, **option)
    except ValueError as exc:
        assert next(iter(option)) in str(exc)
        return
    assert filtered and filtered != run_report(name, engine, start=START, end=END)


# ---- REST ----------------------------------------------------------------------------------------------


def fake_ctid(engine: Engine) -> Any:
    """A daemon with only the reports component, over `engine` (its clock, its report settings)."""
    context: Any = SimpleNamespace(
        clock=SimpleNamespace(now=lambda: END),
        config=SimpleNamespace(wallboard=SimpleNamespace(timezone="UTC"), reports=ReportSettings()),
    )
    interaction_log: Any = SimpleNamespace(engine=engine)
    auth, _ = fake_auth(engine)
    return SimpleNamespace(components=[auth, ReportsComponent(context, interaction_log)])


@pytest.fixture()
async def client(engine: Engine) -> Any:
    headers = bearer(engine)
    async with TestClient(TestServer(make_app(fake_ctid(engine))), headers=headers) as test_client:
        yield test_client


@pytest.mark.parametrize("name", REPORTS)
async def test_rest_returns_the_same_json_as_the_cli(client: Any, db: str, name: str) -> None:
    period = ["--from", "2026-11-20T09:00:00+00:00", "--to", "2026-11-20T10:00:00+00:00"]
    expected = cli_json(db, name, *period, "--interval", "15")
    response = await client.get(f"/api/reports/{name}", params={"from": START, "to": END, "interval": 15})
    assert response.status == 200 and response.content_type == "application/json"
    assert await response.json() == expected


@pytest.mark.parametrize(("fmt", "content_type"), [("html", "text/html"), ("csv", "text/csv")])
async def test_rest_renders_html_and_csv(client: Any, fmt: str, content_type: str) -> None:
    response = await client.get(
        "/api/reports/queue-summary", params={"from": START, "to": END, "format": fmt}
    )
    assert response.status == 200 and response.content_type == content_type
    assert "sales" in await response.text()


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday", "to": END},
        {"from": END, "to": START},
        {"from": START, "to": END, "interval": "half-hour"},
        {"from": START, "to": END, "interval": "0"},
        {"from": START, "to": END, "format": "pdf"},
    ],
)
async def test_rest_refuses_bad_parameters_with_400(client: Any, params: dict[str, Any]) -> None:
    response = await client.get("/api/reports/interval", params=params)
    assert response.status == 400
    assert (await response.text()).strip()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("interval", {"from": START, "to": "inf"}),
        ("inbound-summary", {"from": START, "to": END, "timezone": "Nowhere/Land"}),
    ],
)
async def test_rest_refuses_non_finite_periods_and_unknown_zones(
    client: Any, name: str, params: dict[str, Any]
) -> None:
    response = await client.get(f"/api/reports/{name}", params=params)
    assert response.status == 400


async def test_rest_unknown_report_is_404(client: Any) -> None:
    response = await client.get("/api/reports/nope", params={"from": START, "to": END})
    assert response.status == 404
    assert "queue-summary" in await response.text()  # says which reports there are
