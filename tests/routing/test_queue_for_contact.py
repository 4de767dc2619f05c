"""Where a contact waits when the dialplan did not say (or named a queue routing.yaml lacks), and the check
that the fallback queue exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.errors import ConfigError
from routing.config import load_routing_checked

FILE = Path("conf/routing.yaml")
ROUTING = """\
queues:
  sales:
    skills: {sales: 5}
  support:
    skills: {support: 5}
dnis:
  "+86 4000": sales
  4001: support
agents:
  - {id: alice, name: Alice, device: PJSIP/1001, skills: {sales: 6, support: 6}, queues: [sales, support]}
"""


def test_a_known_ctid_queue_wins_then_the_dialled_number_then_the_default_queue() -> None:
    cfg, _ = load_routing_checked(FILE, env={}, text=ROUTING + "default_queue: support\n")
    assert cfg.queue_for_contact("4000", "support") == "support"  # the IVR chose: kept
    assert cfg.queue_for_contact("+8640 00", "") == "sales"  # numbers compare normalised
    assert cfg.queue_for_contact("+864000", "old-sales") == "sales"  # an older dialplan's queue name
    assert cfg.queue_for_contact("", "") == "support"  # adopted at resync: no number known
    assert cfg.queue_for_contact("5555", "") == "support"


def test_without_default_queue_the_first_queue_takes_unrouted_callers() -> None:
    cfg, _ = load_routing_checked(FILE, env={}, text=ROUTING)
    assert cfg.queue_for_contact("", "") == "sales"


def test_check_config_refuses_a_default_queue_that_does_not_exist() -> None:
    with pytest.raises(ConfigError) as caught:
        load_routing_checked(FILE, env={}, text=ROUTING + "default_queue: suport\n")
    assert caught.value.errors == [
        "conf/routing.yaml:11:16: default_queue: unknown queue 'suport' (did you mean 'support'?)"
    ]
