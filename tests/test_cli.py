"""`ctid check-config` on both kinds of file: ctid.yaml and routing.yaml, valid and broken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ctid.cli", "check-config", *paths],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_shipped_files_pass() -> None:
    result = check(str(ROOT / "config/ctid.yaml"), str(ROOT / "config/routing.yaml"))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"OK {ROOT / 'config/ctid.yaml'}",
        f"OK {ROOT / 'config/routing.yaml'}",
    ]


def test_a_broken_routing_file_fails_with_file_line_column(tmp_path: Path) -> None:
    bad = tmp_path / "routing.yaml"
    bad.write_text("queues:\n  sales:\n    ring_timeout_s: -1\n")
    result = check(str(bad))
    assert result.returncode == 1
    assert f"{bad}:3:21: queues.sales.ring_timeout_s: Input should be greater than 0" in result.stderr
