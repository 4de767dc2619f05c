"""`ctid check-config` as an operator runs it: a hostile file is refused fast and small, a typo warned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ctid.yamlconf import MAX_ALIAS_NODES
from tests.test_config_limits import ROUTING, laughs

CHECK = """\
import json, sys, time
import ctid.cli, ctid.config, reports.report, routing.config  # what check-config imports, before the clock
started = time.monotonic()
code = ctid.cli.main(["check-config", *sys.argv[1:]])
print(json.dumps({"check_s": time.monotonic() - started, "code": code}))
"""
MEASURE = """\
import json, resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], capture_output=True, text=True,
                      timeout=120)
print(json.dumps({"wall_s": time.monotonic() - started, "stderr": done.stderr,
                  **json.loads(done.stdout.splitlines()[-1]),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def check_config(*paths: Path) -> dict[str, Any]:
    """`ctid check-config` in a fresh process: the time of the check itself (the interpreter's start and
    imports take seconds on a busy machine) and the process's peak memory, measured alone."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, CHECK, *map(str, paths)], capture_output=True, text=True, timeout=180
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_check_config_refuses_nested_aliases_in_under_a_second_and_100_mb(tmp_path: Path) -> None:
    nine, ten = tmp_path / "laughs9.yaml", tmp_path / "laughs10.yaml"
    nine.write_text(ROUTING + laughs(9))  # 57 s and 2.8 GB before the bound
    ten.write_text(ROUTING + laughs(10))  # one level deeper: out of memory before the bound
    refused = check_config(nine, ten)
    assert refused["code"] == 1
    assert refused["stderr"] == "".join(
        f"{path}:9:8: alias '*d' expands the document beyond {MAX_ALIAS_NODES} nodes "
        "(aliases may repeat small parts, not multiply the file)\n"
        for path in (nine, ten)
    )
    assert refused["check_s"] < 1.0, refused
    assert refused["maxrss_kb"] < 100 * 1024, refused  # the whole process, Python and imports included


def test_a_skill_no_queue_needs_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "queues:\n  support: {skills: {support: 4}}\n  sales: {skills: {sales: 3}}\nagents:\n"
        "  - {id: alice, name: Alice, device: PJSIP/1001, skills: {sales: 6, support: 5},"
        " queues: [sales, support]}\n"
        "  - {id: bob, name: Bob, device: PJSIP/1002, skills: {sales: 6, supprt: 5}, queues: [support]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, f"OK {path}\n")
    assert done.stderr == (
        f"warning: {path}:6:65: agents[1].skills.supprt: "
        "no queue needs skill 'supprt' (did you mean 'support'? queues need: sales, support)\n"
    )
