"""Bounded work per report request: a report that would be too large is refused with the limit in the
message (HTTP 400, `ctid report` exit 2), at once; an allowed one is computed and rendered off the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine

import reports.report
from ctid.cli import main
from ctid.web import make_app
from reports.report import MAX_ROWS, ReportError, ReportTooLarge, check_request, run_report
from reports.store import DAY_S
from tests.auth_rig import bearer
from tests.reports.test_run import END, START, db, engine, fake_ctid  # noqa: F401  (fixtures)


def healthy_ctid(engine: Engine) -> Any:  # noqa: F811
    ctid = fake_ctid(engine)
    ctid.health = lambda: {"ok": True}
    return ctid


@pytest.fixture()
async def client(engine: Engine) -> Any:  # noqa: F811
    headers = bearer(engine)
    async with TestClient(TestServer(make_app(healthy_ctid(engine))), headers=headers) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("start", "end", "interval_s", "message"),
    [
        (START, START + DAY_S, 0.06, "at least 1 minute"),  # the issue's request: interval=0.001 minutes
        (START, START + 366 * DAY_S, 60.0, "10,000 rows"),
        (START, START + 367 * DAY_S, 1800.0, "366 days"),
        (START, START + DAY_S, float("nan"), "at least 1 minute"),
    ],
)
def test_an_interval_report_over_the_bounds_is_refused_before_any_query(
    start: float, end: float, interval_s: float, message: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(ReportError, match=message):
        # no database at all: the refusal must come before anything is read
        run_report("interval", "sqlite:///nowhere/at/all.db", start=start, end=end, interval_s=interval_s)
    assert time.perf_counter() - started < 0.5


def test_every_report_refuses_a_period_over_a_year() -> None:
    for name in reports.report.REPORTS:
        with pytest.raises(ReportTooLarge, match="366 days"):
            check_request(name, start=START, end=START + 400 * DAY_S)


def test_the_rows_of_every_queue_count_and_one_queue_fits(engine: Engine) -> None:  # noqa: F811
    """10,000 one-minute intervals: over the limit for the log's two queues, exactly at it for one."""
    end = START + MAX_ROWS * 60
    with pytest.raises(ReportTooLarge, match=r"10,000 intervals x 2 queues.*10,000 rows"):
        run_report("interval", engine, start=START, end=end, interval_s=60)
    rows = run_report("interval", engine, start=START, end=end, interval_s=60, queue="sales")
    assert len(rows) == MAX_ROWS and {r["queue"] for r in rows} == {"sales"}
    assert sum(r["offered"] for r in rows) == sum(
        r["offered"] for r in run_report("queue-summary", engine, start=START, end=end, queue="sales")
    )


async def test_the_issues_request_is_refused_with_the_limit_at_once_and_healthz_answers(client: Any) -> None:
    started = time.perf_counter()
    response = await client.get(
        "/api/reports/interval", params={"from": START, "to": START + DAY_S, "interval": 0.001}
    )
    assert response.status == 400
    assert "at least 1 minute" in await response.text()
    huge = await client.get(
        "/api/reports/interval", params={"from": START, "to": START + 300 * DAY_S, "interval": 1}
    )
    assert huge.status == 400
    assert f"{MAX_ROWS:,} rows" in await huge.text()
    health = await client.get("/healthz")
    assert health.status == 200
    assert time.perf_counter() - started < 2.0


async def test_a_maximal_report_is_served_and_healthz_answers_while_it_runs(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report is computed and rendered in a worker thread: it is held there until /healthz has
    answered, which it could never do if the report ran on the event loop."""
    release = threading.Event()
    threads: set[int] = set()
    real_run, real_render = reports.report.run_report, reports.report.render

    def held_run(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        assert release.wait(10)
        return real_run(*args, **kwargs)

    def watched_render(*args: Any, **kwargs: Any) -> str:
        threads.add(threading.get_ident())
        return real_render(*args, **kwargs)

    monkeypatch.setattr(reports.report, "run_report", held_run)
    monkeypatch.setattr(reports.report, "render", watched_render)
    params = {"from": START, "to": START + MAX_ROWS * 60, "interval": 1, "queue": "sales"}
    for fmt in ("json", "csv"):
        report = asyncio.ensure_future(client.get("/api/reports/interval", params={**params, "format": fmt}))
        health = await asyncio.wait_for(client.get("/healthz"), 5)
        assert health.status == 200 and not report.done()
        release.set()
        response = await asyncio.wait_for(report, 60)
        release.clear()
        assert response.status == 200
        if fmt == "json":
            assert len(await response.json()) == MAX_ROWS
        else:
            assert len((await response.text()).splitlines()) == MAX_ROWS + 1
    assert threads and threading.get_ident() not in threads


def test_the_cli_refuses_a_report_too_large_as_an_invalid_request(
    db: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    period = ["--from", "2025-01-01T00:00:00+00:00", "--to", datetime(2026, 11, 20, tzinfo=UTC).isoformat()]
    assert main(["report", "queue-summary", *period, "--db", db]) == 1  # 2 is for a file it cannot use
    err = capsys.readouterr().err
    assert err.startswith("report: ") and "366 days" in err and "Traceback" not in err
