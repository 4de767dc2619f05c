"""routing.yaml's dialled numbers under the one phone-number rule (`ctid.customers.phone_digits`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.errors import ConfigError
from routing.config import RoutingConfig, load_routing_checked

ROUTING = """\
queues:
  sales: {{skills: {{sales: 5}}}}
dnis:
  {number}: sales
agents:
  - {{id: alice, name: Alice, device: PJSIP/1001, skills: {{sales: 6}}, queues: [sales]}}
"""


def load(number: str) -> RoutingConfig:
    config, _ = load_routing_checked(Path("routing.yaml"), env={}, text=ROUTING.format(number=number))
    return config


@pytest.mark.parametrize("written", ['"+44 20 7946-0958"', '"- 4000"', '" + 4000 "', "4000"])
def test_digits_with_an_optional_leading_plus_and_separators_are_a_dialled_number(written: str) -> None:
    assert list(load(written).dnis.values()) == ["sales"]


@pytest.mark.parametrize("written", ['"40a0"', '"4+000"', '"++4000"', '"+"', '"(4000)"', '"٤٠٠٠"'])
def test_anything_else_is_refused(written: str) -> None:
    with pytest.raises(ConfigError, match="is not a dialled number"):
        load(written)


def test_a_dialled_number_matches_by_its_digits_however_it_is_written() -> None:
    config = load('"+44 20 7946-0958"')
    assert config.queue_for_number("442079460958") == "sales"
    assert config.queue_for_number("+44-20-7946-0958") == "sales"
    assert config.queue_for_number("02079460958") is None  # a trunk prefix is not dropped for DNIS
    assert config.queue_for_contact("4000") == "sales"  # unknown: the entry queue
