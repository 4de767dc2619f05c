"""`ctid bench routing` end to end on a small center: the JSON the issue promises, with sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

FIGURES = ("offered", "answered", "abandoned", "service_level", "asa_s", "p90_wait_s", "abandon_rate")


def bench(*options: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "bench", "routing", "--json", *options],
        capture_output=True,
        check=True,
        text=True,
        timeout=120,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_bench_routing_prints_every_policy_per_tier_and_the_decision_latency() -> None:
    result = bench("--seed", "4", "--agents", "12", "--hours", "0.5", "--mix", "0.2,0.3,0.5")
    assert result["seed"] == 4
    assert result["scenario"]["mix"] == {"A": 0.2, "B": 0.3, "C": 0.5}
    assert set(result["policies"]) == {"fifo_longest_idle", "fifo_fewest_calls", "ctid"}
    offered = {name: policy["overall"]["offered"] for name, policy in result["policies"].items()}
    assert len(set(offered.values())) == 1 and offered["ctid"] > 40  # the same callers for every policy
    for policy in result["policies"].values():
        overall = policy["overall"]
        assert set(FIGURES) <= set(overall)
        assert overall["answered"] + overall["abandoned"] == overall["offered"]
        assert 0 <= overall["service_level"] <= 1 and 0 <= overall["abandon_rate"] <= 1
        assert 0 <= overall["asa_s"] <= overall["p90_wait_s"] * 10
        assert set(policy["tiers"]) == {"A", "B", "C"}
        assert sum(tier["offered"] for tier in policy["tiers"].values()) == overall["offered"]
        assert 0 <= policy["occupancy_spread_pts"] <= 100
    latency = result["decision_latency"]
    assert (latency["agents"], latency["waiting"]) == (10_000, 2_000)
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert latency["offers"] > 0
    assert set(result["targets"]) >= {"ctid_tier_a_service_level_ge_95pct", "decision_p99_le_2ms"}


def test_bench_routing_over_seeds_pairs_ctid_with_fifo_on_each_seed() -> None:
    result = bench("--seeds", "3-4,6", "--agents", "12", "--hours", "0.5")
    assert result["seeds"] == [3, 4, 6]
    assert [run["seed"] for run in result["runs"]] == [3, 4, 6]
    differences = [run["abandoned"]["ctid"] - run["abandoned"]["fifo_longest_idle"] for run in result["runs"]]
    paired = result["abandoned_ctid_minus_fifo"]
    assert paired["mean"] == round(sum(differences) / 3, 2)
    assert paired["ci95_normal"][0] <= paired["mean"] <= paired["ci95_normal"][1]
    assert paired["ctid_more"] + paired["equal"] + paired["ctid_fewer"] == 3
    assert paired["ctid_more"] == sum(d > 0 for d in differences)
    held = result["targets_held_on_seeds"]
    for name, count in held.items():
        assert count == sum(run["targets"][name] for run in result["runs"])
