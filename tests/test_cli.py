"""The `ctid` command line: check-config on both kinds of file, files that cannot be used, init, report and
sim-day periods."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctid.tooling.simday import DEFAULT_ROUTING

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


# --- check-config tells a routing.yaml from a ctid.yaml --------------------------------------------------

KINDS = {
    "ctid.yaml": frozenset({"asterisk", "agi", "web", "database", "routing"}),
    "routing.yaml": frozenset({"queues", "dnis", "agents", "hours"}),
}


def test_a_typo_in_queues_is_one_error_with_did_you_mean(tmp_path: Path) -> None:
    routing = (ROOT / "config/routing.yaml").read_text()
    bad = tmp_path / "routing.yaml"
    bad.write_text(routing.replace("\nqueues:\n", "\nqueuse:\n", 1))
    line = routing.splitlines().index("queues:") + 1
    result = check(str(bad))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{bad}:{line}:1: queuse: unknown key 'queuse' (did you mean 'queues'?)\n"


def test_a_typo_in_a_required_ctid_key_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "ctid.yaml"
    bad.write_text((ROOT / "config/ctid.yaml").read_text().replace("secret:", "secert:"))
    result = check(str(bad))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "asterisk[0].secert: unknown key 'secert' (did you mean 'secret'?)" in result.stderr


def test_kind_by_the_most_top_level_keys_in_common() -> None:
    from ctid.config import file_kind

    assert file_kind("f", ["queuse", "dnis", "agents", "hours"], KINDS).kind == "routing.yaml"
    assert file_kind("f", ["asterisk", "database", "queues"], KINDS).kind == "ctid.yaml"


def test_a_tie_or_no_known_key_names_both_kinds() -> None:
    from ctid.config import file_kind

    tie = file_kind("f.yaml", ["asterisk", "queues"], KINDS)
    assert tie.kind is None
    assert tie.problem == (
        "f.yaml: could be a ctid.yaml or a routing.yaml: as many top-level keys of each "
        "(ctid.yaml: asterisk; routing.yaml: queues); keep the keys of one kind"
    )
    none = file_kind("f.yaml", ["queuse"], KINDS)
    assert none.kind is None
    assert none.problem.startswith("f.yaml: could be a ctid.yaml or a routing.yaml, but has none of their")
    assert none.problem.endswith("unknown: 'queuse' (did you mean 'queues' of a routing.yaml?)")


def test_top_level_keys_are_read_from_block_style_lines() -> None:
    from ctid.config import top_level_keys

    text = '# queues: no\n---\nqueues:\n  sales: {}\n"dnis": {}\n- item\nagents: []\nqueues: {}\n'
    assert top_level_keys(text) == ["queues", "dnis", "agents"]


def test_an_undecidable_file_is_one_line_and_fails(tmp_path: Path) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text("colour: blue\n")
    result = check(str(odd))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{odd}: could be a ctid.yaml or a routing.yaml, but has none")
    assert result.stderr.count("\n") == 1


# --- files that cannot be read or written: one line with the path, exit 2 -------------------------------


def missing_cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(arguments, the line expected on stderr, or its start) for every command that takes a path."""
    gone = tmp / "gone"
    unwritable = tmp / "file" / "x"  # under a regular file: no directory can be made there
    (tmp / "file").write_text("")
    routing = str(ROOT / "config/routing.yaml")
    return [
        (["check-config", f"{gone}.yaml"], f"{gone}.yaml: cannot read: No such file or directory"),
        (["check-config", str(tmp)], f"{tmp}: cannot read: Is a directory"),
        (["run", "-c", f"{gone}.yaml"], f"{gone}.yaml: cannot read: No such file or directory"),
        (["demo", "-c", f"{gone}.yaml"], f"{gone}.yaml: cannot read: No such file or directory"),
        (["replay", f"{gone}.ami"], f"{gone}.ami: cannot read: No such file or directory"),
        (["report", "kpi", "-c", f"{gone}.yaml"], f"{gone}.yaml: cannot read: No such file or directory"),
        (
            ["report", "kpi", "-c", f"{gone}.yaml", "--db", f"sqlite:///{gone}.db"],
            f"{gone}.db: cannot read: No such file or directory",
        ),
        (["sim-day", "--routing", f"{gone}.yaml"], f"{gone}.yaml: cannot read: No such file or directory"),
        (
            ["sim-day", "--routing", routing, "--ami-log", str(unwritable)],
            f"{unwritable}: cannot write: ",
        ),
        (
            ["sim-day", "--routing", routing, "--db", f"sqlite:///{unwritable}.db"],
            f"{unwritable}.db: cannot write: ",
        ),
        (["init", str(unwritable)], f"{unwritable}: cannot write: "),
    ]


def test_a_missing_or_unusable_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ctid.cli import main

    for argv, line in missing_cases(tmp_path):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "", argv
        assert err.startswith(line) and err.count("\n") == 1 and err.endswith("\n"), argv
        assert err == line + "\n" or line.endswith(": "), argv


def test_a_missing_file_is_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "run", "-c", str(tmp_path / "gone.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (
        2,
        f"{tmp_path / 'gone.yaml'}: cannot read: No such file or directory\n",
    )


def test_a_routing_file_named_by_ctid_yaml_that_is_missing_is_exit_2(tmp_path: Path) -> None:
    from ctid.cli import main

    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\nrouting: gone.yaml\n"
    )
    assert main(["run", "-c", str(config)]) == 2


# --- reports and sim-day name their period --------------------------------------------------------------


def test_a_report_over_a_period_without_contacts_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ctid.cli import main
    from reports.log import upgrade_database

    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade_database(url)
    argv = ["report", "queue-summary", "--db", url, "-c", str(tmp_path / "none.yaml")]
    assert main([*argv, "--from", "2026-11-02", "--to", "2026-11-03", "--timezone", "Asia/Shanghai"]) == 0
    _, err = capsys.readouterr()
    assert err == (
        "report: no contacts from 2026-11-02T00:00:00+08:00 to 2026-11-03T00:00:00+08:00 (Asia/Shanghai) "
        f"in {url}\n"
    )


def test_sim_day_prints_the_report_period_and_a_report_over_it_has_the_contacts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'day.db'}"
    sim_day = ["sim-day", "--hours", "0.1", "--calls-per-hour", "120", "--db", db]
    done = subprocess.run(
        [sys.executable, "-m", "ctid.cli", *sim_day, "--ami-log", str(tmp_path / "day.ami")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    start = datetime.fromtimestamp(result["virtual_start"], ZoneInfo("Asia/Shanghai"))
    assert result["report"] == [
        "--db",
        db,
        "--from",
        start.isoformat(),
        "--to",
        (start + timedelta(minutes=6)).isoformat(),
        "--timezone",
        "Asia/Shanghai",
        "--routing",  # the simulated routing.yaml: its queues' service-level thresholds
        str(DEFAULT_ROUTING.resolve()),
    ]
    assert f"ctid report queue-summary {shlex.join(result['report'])}" in done.stderr
    report = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "report", "queue-summary", "--format", "json", *result["report"]],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert (report.returncode, report.stderr) == (0, "")
    assert sum(row["offered"] for row in json.loads(report.stdout)) > 0
    thresholds = {row["queue"]: row["service_level_s"] for row in json.loads(report.stdout)}
    assert thresholds == {"sales": 20.0, "support": 30.0}  # run from a directory without a ctid.yaml


# --- ctid init and the shipped samples ------------------------------------------------------------------


def test_init_writes_the_samples_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ctid.cli import main
    from ctid.samples import SAMPLE_FILES

    dest = tmp_path / "conf"
    assert main(["init", str(dest)]) == 0
    out, _ = capsys.readouterr()
    for name in SAMPLE_FILES:
        assert (dest / name).read_bytes() == (ROOT / "config" / name).read_bytes()
        assert f"wrote {dest / name}\n" in out
    assert f"ctid check-config {dest / 'ctid.yaml'} {dest / 'routing.yaml'}" in out
    assert f"ctid run -c {dest / 'ctid.yaml'}" in out

    (dest / "routing.yaml").write_text("# mine\n")
    assert main(["init", str(dest)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "".join(
        f"{dest / name}: exists (nothing written; --force overwrites)\n" for name in SAMPLE_FILES
    )
    assert (dest / "routing.yaml").read_text() == "# mine\n"

    assert main(["init", str(dest), "--force"]) == 0
    assert (dest / "routing.yaml").read_bytes() == (ROOT / "config/routing.yaml").read_bytes()
    assert main(["check-config", str(dest / "ctid.yaml"), str(dest / "routing.yaml")]) == 0


def test_the_shipped_samples_are_the_repository_config_and_all_of_it() -> None:
    """config/ is the one source: the package reaches it through a link, and the wheel's package data
    patterns take every file in it (a new sample file added to config/ but not shipped fails here)."""
    import tomllib
    from fnmatch import fnmatch

    from ctid.samples import SAMPLE_FILES, sample_path

    in_config = sorted(
        str(p.relative_to(ROOT / "config")) for p in (ROOT / "config").rglob("*") if p.is_file()
    )
    assert sorted(SAMPLE_FILES) == in_config
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "ctid"
    ]
    for name in SAMPLE_FILES:
        assert sample_path(name).read_bytes() == (ROOT / "config" / name).read_bytes()
        assert any(fnmatch(f"sample_config/{name}", pattern) for pattern in patterns), name
