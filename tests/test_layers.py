"""The pure cores load no I/O library: each imported alone, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO_LIBRARIES = ("sqlalchemy", "pydantic", "alembic", "prometheus_client", "aiohttp", "redis", "pbxsim")
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
]
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:])))
"""


def loaded_by(module: str) -> list[str]:
    """The modules of IO_LIBRARIES that importing `module` alone loads."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, *IO_LIBRARIES], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", PURE_CORES)
def test_a_pure_core_loads_no_io_library(module: str) -> None:
    assert loaded_by(module) == []


def test_the_probe_sees_a_library_that_is_loaded() -> None:
    assert "sqlalchemy" in loaded_by("reports.log")
