"""routing.yaml's disposition codes: the sample has some, each is a short lower-case code, none repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.errors import ConfigError
from routing.config import load_routing, load_routing_checked

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
BASE = "queues:\n  sales: {}\nagents:\n  - {id: alice, name: Alice, device: PJSIP/1001, queues: [sales]}\n"


def test_the_sample_lists_disposition_codes() -> None:
    assert "resolved" in load_routing(SAMPLE, env={}).dispositions


def test_dispositions_default_to_none() -> None:
    config, _ = load_routing_checked(Path("routing.yaml"), env={}, text=BASE)
    assert config.dispositions == ()


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        ("[resolved, resolved]", "dispositions repeat: resolved"),
        ('["Sold!"]', "dispositions[0]: String should match pattern"),
    ],
)
def test_a_bad_disposition_list_names_the_problem(codes: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_routing_checked(Path("routing.yaml"), env={}, text=f"{BASE}dispositions: {codes}\n")
    assert any(problem in line and line.startswith("routing.yaml:") for line in caught.value.errors), (
        caught.value.errors
    )
