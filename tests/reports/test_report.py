"""`ctid report`: every report in every format over a simulated hour, and the same JSON over REST."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctid.tooling.simday import sim_day
from reports.report import FORMATS, REPORTS, render, run_report
from tests.reports.test_run import REQUIRED


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    tmp = tmp_path_factory.mktemp("day")
    db = f"sqlite:///{tmp}/day.db"
    result = asyncio.run(sim_day(seed=4, hours=1, db_url=db, ami_log=tmp / "day.ami", calls_per_hour=90))
    return db, result["virtual_start"]


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_renders_in_every_format(day: tuple[str, float], name: str) -> None:
    db, start = day
    result = run_report(name, db, start=start, end=start + 3600, interval_s=900)
    assert result, name
    for fmt in FORMATS:
        text = render(name, result, fmt)
        if fmt == "json":
            assert json.loads(text) == json.loads(json.dumps(result, default=str))
        elif fmt == "csv":
            table = list(csv.reader(io.StringIO(text)))
            assert len(table) >= 2 and all(len(row) == len(table[0]) for row in table)
        elif fmt == "html":
            assert text.startswith("<!doctype html>") and "</html>" in text
            assert "http://" not in text and "https://" not in text  # one file a manager can email
            if name != "kpi":
                assert "<svg" in text
        else:
            assert len(text.splitlines()) >= 2


def test_the_cli_prints_the_queue_summary_json(day: tuple[str, float]) -> None:
    db, start = day
    iso = datetime.fromtimestamp(start, UTC).isoformat()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctid.cli",
            "report",
            "queue-summary",
            "--db",
            db,
            "--from",
            iso,
            "--to",
            datetime.fromtimestamp(start + 3600, UTC).isoformat(),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    summary = json.loads(out)
    assert [q["queue"] for q in summary] == sorted(q["queue"] for q in summary)
    for queue in summary:
        assert all(key in queue for key in REQUIRED)
        assert queue["offered"] >= queue["answered"] + queue["abandoned"] + queue["deflected"]
    assert sum(q["offered"] for q in summary) > 40


def test_unknown_reports_and_bad_periods_are_refused(day: tuple[str, float]) -> None:
    db, start = day
    with pytest.raises(ValueError, match="unknown report"):
        run_report("nope", db, start=start, end=start + 60)
    with pytest.raises(ValueError, match="after"):
        run_report("queue-summary", db, start=start, end=start - 60)
