"""`ctid bench reports` on a small month: both databases loaded through the writer, the same figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ctid.tooling.pgtemp import postgres_bindir


def test_bench_reports_loads_both_databases_and_times_every_report() -> None:
    if postgres_bindir() is None:
        pytest.skip("needs the Debian package postgresql")
    command = ["bench", "reports", "--json", "--calls", "400", "--agents", "6", "--hours", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "ctid.cli", *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout)
    template = result["template"]
    copies = result["calls"] // template["calls"]
    assert copies >= 2 and result["calls"] >= 400
    assert result["events"] == copies * template["events"]
    sqlite, postgres = result["sqlite"], result["postgresql"]
    for db in (sqlite, postgres):
        assert db["events"] == result["events"] and db["events_per_s"] > 0
        reports = db["reports"]
        assert set(reports) == {"queue_summary", "interval", "agent_performance"}
        assert all(r["median_ms"] > 0 for r in reports.values())
        assert reports["interval"]["rows"] == 30 * 48  # every half hour of the month, one queue
        # every call of the month is one contact, in the summary and across the intervals
        assert reports["queue_summary"]["offered"] == reports["interval"]["offered"] >= result["calls"]
        # copies sharing a day get agents of their own: one row per agent and team
        assert reports["agent_performance"]["rows"] == 6 * -(-copies // 30)
    assert sqlite["reports"]["queue_summary"]["offered"] == postgres["reports"]["queue_summary"]["offered"]
    handled = [db["reports"]["agent_performance"]["handled"] for db in (sqlite, postgres)]
    assert handled[0] == handled[1] > 0
    board = result["wallboard"]
    assert board["events_today"] > 0 and board["refresh_median_ms"] > 0 and board["snapshot_bytes"] > 100
