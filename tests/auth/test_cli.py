"""`ctid user ...` on a ctid.yaml's database, and `ctid reload` without a token."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ctid.auth import Role, User
from ctid.auth.store import UserStore
from ctid.cli import main
from ctid.db import make_engine
from reports.log import load_events
from tests.test_control import Daemon, ctid_yaml, daemon  # noqa: F401  (fixture)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ctid.yaml"
    path.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\n"
        f"database: sqlite:///{tmp_path}/ctid.db\n"
    )
    return path


def users(config: Path) -> UserStore:
    return UserStore(make_engine(f"sqlite:///{config.parent}/ctid.db"), lambda: 1.0)


def run(config: Path, monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["user", *args, "-c", str(config)])


def test_users_are_added_listed_changed_and_disabled(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_logs() as logs:
        added = run(config, monkeypatch, "add", "ann", "--role", "agent", "--agent", "a1", "--password-stdin",
                    stdin="first secret\n")  # fmt: skip
    assert added == 0
    assert run(config, monkeypatch, "add", "sue", "--role", "supervisor", "--generate") == 0
    out = capsys.readouterr().out
    generated = out.split("password for sue: ")[1].split()[0]
    assert "first secret" not in out and not any("first secret" in str(e) for e in logs)
    assert users(config).check_password("ann", "first secret") == User("ann", Role.AGENT, "a1")
    assert users(config).check_password("sue", generated) is not None

    assert run(config, monkeypatch, "list") == 0
    assert capsys.readouterr().out.splitlines() == ["ann\tagent\ta1", "sue\tsupervisor\t-"]
    assert run(config, monkeypatch, "passwd", "ann", "--password-stdin", stdin="second secret\n") == 0
    assert users(config).check_password("ann", "second secret") is not None
    assert run(config, monkeypatch, "token", "sue") == 0
    token = capsys.readouterr().out.splitlines()[-1]
    assert users(config).token_user(token) == User("sue", Role.SUPERVISOR)
    assert run(config, monkeypatch, "disable", "sue") == 0
    assert users(config).token_user(token) is None and users(config).check_password("sue", generated) is None

    logged = load_events(f"sqlite:///{config.parent}/ctid.db", 0, 1e12, kinds=["AdminAction"])
    assert [(e["data"]["action"], e["data"]["target"]) for e in logged] == [
        ("user add", "ann"),
        ("user add", "sue"),
        ("user passwd", "ann"),
        ("user token", "sue"),
        ("user disable", "sue"),
    ]
    assert all(e["data"]["user"].startswith("os:") for e in logged)


def test_bad_requests_are_exit_status_1_and_a_missing_config_2(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, monkeypatch, "add", "ann", "--role", "agent", "--password-stdin", stdin="x" * 10) == 1
    assert "needs --agent" in capsys.readouterr().err
    assert run(config, monkeypatch, "add", "ada", "--role", "admin", "--password-stdin", stdin="short\n") == 1
    assert run(config, monkeypatch, "disable", "nobody") == 1
    assert "no user nobody" in capsys.readouterr().err
    assert main(["user", "list", "-c", str(config.parent / "missing.yaml")]) == 2


def test_passwords_typed_twice_must_match(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    typed = iter(["one password", "another one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert run(config, monkeypatch, "add", "ada", "--role", "admin") == 1
    assert users(config).users() == []


async def test_reload_logs_in_with_ctid_token_and_without_a_token_is_refused(
    daemon: Daemon,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctid_yaml(daemon.ctid_yaml, int(daemon.base.rsplit(":", 1)[1]))  # no token_file any more
    monkeypatch.delenv("CTID_TOKEN", raising=False)
    refused = await daemon.cli("reload")
    assert refused.returncode == 1 and "ctid user token" in refused.stderr
    monkeypatch.setenv("CTID_TOKEN", daemon.token)
    reloaded = await daemon.cli("reload")
    assert (reloaded.returncode, reloaded.stdout) == (0, "version 1 routing (unchanged)\n"), reloaded.stderr
