"""A regular install works: `pip install .` (not editable) into a fresh venv, then ctid from any directory.

The repository is copied first (pip builds in the tree it is given, so build/ and *.egg-info land in the
copy, never in the checkout), the copy is deleted once installed (nothing may read the source tree), and
every command runs from an empty temporary directory with the shipped samples as its defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", "tests", "var", ".ci"
)


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_regular_install_runs_from_any_directory(tmp_path: Path) -> None:
    source, venv, work = tmp_path / "src", tmp_path / "venv", tmp_path / "work"
    shutil.copytree(ROOT, source, symlinks=True, ignore=IGNORED)
    work.mkdir()
    started = time.monotonic()
    made = run([sys.executable, "-m", "venv", str(venv)], work)
    assert made.returncode == 0, made.stderr
    installed = run(
        [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(source)], work
    )
    install_s = time.monotonic() - started
    assert installed.returncode == 0, installed.stderr
    print(f"fresh venv and pip install: {install_s:.1f} s")
    shutil.rmtree(source)  # the installed ctid must not need it
    ctid = str(venv / "bin/ctid")

    where = run([str(venv / "bin/python"), "-c", "import ctid.samples as s; print(s.sample_dir())"], work)
    samples = Path(where.stdout.strip())
    assert samples.is_relative_to(venv), where  # the wheel's own copy, in site-packages

    checked = run([ctid, "check-config", str(samples / "ctid.yaml"), str(samples / "routing.yaml")], work)
    assert (checked.returncode, checked.stderr) == (0, ""), checked
    assert checked.stdout == f"OK {samples / 'ctid.yaml'}\nOK {samples / 'routing.yaml'}\n"

    day = run([ctid, "sim-day", "--hours", "0.2"], work)
    assert day.returncode == 0, day.stderr
    result = json.loads(day.stdout)
    assert result["calls_ended"] > 0
    assert (work / "var/sim-day.db").stat().st_size > 0  # in ./var of the directory it ran in
    assert (
        f"ctid report queue-summary --db sqlite:///var/sim-day.db --from {result['report'][3]}" in day.stderr
    )
    report = run([ctid, "report", "queue-summary", "--format", "json", *result["report"]], work)
    assert (report.returncode, report.stderr) == (0, ""), report
    assert sum(row["offered"] for row in json.loads(report.stdout)) > 0

    bench = run([ctid, "bench", "routing", "--json", "--hours", "0.2"], work)
    assert bench.returncode == 0, bench.stderr
    figures = json.loads(bench.stdout)["policies"]
    assert set(figures) == {"fifo_longest_idle", "fifo_fewest_calls", "ctid"}
    assert all(policy["overall"]["offered"] > 0 for policy in figures.values())

    init = run([ctid, "init", "conf"], work)
    assert init.returncode == 0, init.stderr
    assert "wrote conf/routing.yaml" in init.stdout and "ctid check-config conf/ctid.yaml" in init.stdout
    again = run([ctid, "check-config", "conf/ctid.yaml", "conf/routing.yaml"], work)
    assert (again.returncode, again.stdout) == (0, "OK conf/ctid.yaml\nOK conf/routing.yaml\n")

    missing = run([ctid, "run"], work)  # no config/ctid.yaml here: one line, no traceback
    assert (missing.returncode, missing.stderr) == (
        2,
        "config/ctid.yaml: cannot read: No such file or directory\n",
    )
