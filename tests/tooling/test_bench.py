"""`ctid bench ingest` end to end on a small stream: the JSON it promises, and no name mangled on the way."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_ingest_prints_its_figures_and_keeps_every_name() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctid.cli",
            "bench",
            "ingest",
            "--json",
            "--events",
            "3000",
            "--rate",
            "5000",
            "--rounds",
            "2",
        ],
        capture_output=True,
        check=True,
        text=True,
        timeout=120,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("events_per_s", "p50_ms", "p99_ms", "panoramisk_stock_events_per_s", "mangled_names"):
        assert result[key] >= 0, key
    assert result["events"] == 3000 and result["calls_folded"] > 10
    assert result["mangled_names"] == 0
    assert result["caller_names_seen"] > 3  # the traffic's 张伟, 王芳... arrive whole
    assert result["latency_samples"] > 0
    assert len(result["speedup_per_round"]) == 2
