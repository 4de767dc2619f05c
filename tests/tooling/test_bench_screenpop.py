"""`ctid bench screenpop` run small: a whole ctid and pbxsim, every agent's desktop socket, every ring popped
once on the ringing agent's socket and nowhere else."""

from __future__ import annotations

import json
import subprocess
import sys

from ctid.tooling.bench_screenpop import Received, pop_figures


def test_bench_screenpop_pops_every_ring_once_on_the_ringing_agents_socket() -> None:
    command = ["bench", "screenpop", "--json", "--agents", "20", "--customers", "2000"]
    command += ["--calls-per-s", "5", "--seconds", "5"]
    done = subprocess.run(
        [sys.executable, "-m", "ctid.cli", *command], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(done.stdout)
    assert {
        "agents",
        "customers",
        "calls_per_s",
        "seconds",
        "database",
        "pop_ms",
        "lookup_ms",
        "pops",
    } <= set(result)
    assert (result["agents"], result["customers"], result["database"]) == (20, 2000, "sqlite")
    assert result["rows"]["customer_calls"] == 20_000 and result["rows"]["price_quote"] == 2000
    pops = result["pops"]
    assert pops["rings"] >= 20 and pops["sent"] == pops["received"] == pops["rings"]
    assert (pops["lost"], pops["duplicated"], pops["wrong_agent"]) == (0, 0, 0)
    assert 0 < result["pop_ms"]["p50"] <= result["pop_ms"]["p99"] <= result["pop_ms"]["max"]
    assert result["lookup_ms"]["lookups"] == result["callers"] == 25
    assert result["with_data_ms"]["p99"] >= result["pop_ms"]["p50"]
    assert isinstance(result["rss_kb_per_agent"], float)


def test_pop_figures_count_lost_duplicated_and_misdelivered_pops() -> None:
    rings = {("PJSIP/20001", "c1"): 1.0, ("PJSIP/20002", "c2"): 2.0, ("PJSIP/20003", "c3"): 3.0}
    received = [
        Received(1, "PopOpened", "c1", 1.010, True),
        Received(1, "PopOpened", "c1", 1.020, True),  # twice
        Received(2, "PopOpened", "c2", 2.030, False),  # before the customer's data
        Received(2, "PopUpdated", "c2", 2.050, True),
        Received(4, "PopOpened", "c3", 3.050, True),  # agent 4's desktop, agent 3 rang
    ]
    figures = pop_figures(rings, received, sent=4)
    assert figures["pops"] == {
        "sent": 4,
        "received": 4,
        "lost": 1,
        "duplicated": 1,
        "wrong_agent": 1,
        "rings": 3,
        "opened_before_data": 1,
    }
    assert figures["pop_ms"]["max"] == 30.0  # from each ring to its first pop on the right socket
    assert figures["with_data_ms"]["p99"] == 50.0  # to the update that brought the data
