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


def test_a_file_that_is_not_utf8_is_reported_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "routing.yaml"
    bad.write_bytes("queues: {}\n# caf\u00e9\n".encode("latin-1"))
    result = check(str(bad))
    assert result.returncode == 1
    assert result.stderr == f"{bad}: not UTF-8 text: invalid continuation byte at byte 16\n"


def test_run_refuses_a_broken_routing_file_with_file_line_column(tmp_path: Path) -> None:
    routing = (ROOT / "config/routing.yaml").read_text()
    (tmp_path / "routing.yaml").write_text(routing.replace("ring_timeout_s: 15", "ring_timout_s: 15", 1))
    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\n"
        f"routing: routing.yaml\ndatabase: sqlite:///{tmp_path}/ctid.db\nspool: {tmp_path}/spool.jsonl\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 1
    line = next(n for n, text in enumerate(routing.splitlines(), 1) if "ring_timeout_s: 15" in text)
    assert result.stderr.startswith(f"{tmp_path / 'routing.yaml'}:{line}:5: queues.sales.ring_timout_s:")
    assert "Traceback" not in result.stderr
