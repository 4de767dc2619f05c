"""The layers at run time, each module imported alone in a fresh interpreter: the pure cores load no I/O
library, and the product loads neither pbxsim nor the tooling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO_LIBRARIES = ("sqlalchemy", "pydantic", "alembic", "prometheus_client", "aiohttp", "redis")
TOOLS = ("pbxsim", "ctid.tooling")
PURE_CORES = [
    "routing",
    "routing.engine",
    "routing.acd",
    "reports",
    "reports.kpi",
    "ctid.state",
    "ctid.ami",
    "ctid.commands",
    "ctid.bus",
    "ctid.dialplan",
    "ctid.agents",
    "ctid.customers",
    "ctid.auth",
    "ivr",
]
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
wanted = sys.argv[2:]
print(json.dumps(sorted(m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in wanted))))
"""


def loaded_by(module: str, packages: tuple[str, ...] = IO_LIBRARIES) -> list[str]:
    """The modules of `packages` that importing `module` alone loads."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, *packages], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", PURE_CORES)
def test_a_pure_core_loads_no_io_library(module: str) -> None:
    assert loaded_by(module) == []


def test_the_probe_sees_a_library_that_is_loaded() -> None:
    assert "sqlalchemy" in loaded_by("reports.log")


@pytest.mark.parametrize("module", ["ctid.cli", "ctid.daemon"])
def test_the_product_loads_neither_pbxsim_nor_the_tooling(module: str) -> None:
    assert loaded_by(module, TOOLS) == []


def test_the_tools_are_seen_when_loaded() -> None:
    assert {"ctid.tooling.routing_sim", "pbxsim"} <= set(loaded_by("ctid.tooling.routing_sim", TOOLS))
