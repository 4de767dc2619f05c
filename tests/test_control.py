"""`ctid reload`, `ctid config history` and `ctid config rollback` against ctid's real HTTP routes.

The CLI runs as its own process, as an operator runs it, and finds the daemon through ctid.yaml's `web:`.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from ctid.web import start_web
from routing.component import RoutingApi
from routing.versions import RoutingConfigManager
from tests.auth_rig import add_user, fake_auth

SAMPLE = Path(__file__).resolve().parents[1] / "config" / "routing.yaml"


@dataclass
class Daemon:
    routing_file: Path
    ctid_yaml: Path
    base: str
    manager: RoutingConfigManager
    token: str  # an admin's, in the token file ctid.yaml names

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ctid.cli", *args, "-c", str(self.ctid_yaml)]
        return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=30)

    async def http(self, method: str, path: str) -> tuple[int, Any]:
        login = {"Authorization": f"Bearer {self.token}"}
        async with (
            aiohttp.ClientSession(headers=login) as session,
            session.request(method, self.base + path) as resp,
        ):
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def ctid_yaml(path: Path, port: int, token_file: Path | None = None) -> Path:
    token = f", token_file: {token_file}" if token_file else ""
    path.write_text(
        "asterisk:\n"
        "  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\n"
        f"web: {{host: 127.0.0.1, port: {port}{token}}}\n"
    )
    return path


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    routing_file = tmp_path / "routing.yaml"
    shutil.copy(SAMPLE, routing_file)
    manager = RoutingConfigManager(routing_file, lambda cfg: None)
    manager.load_initial()
    auth, _ = fake_auth()
    add_user(auth.users.engine, "ops")
    secret = auth.users.issue_token("ops")  # an admin's, for `ctid reload` and `ctid config`
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    # the routing.yaml handlers only use the version manager
    daemon: Any = SimpleNamespace(components=[auth, RoutingApi(service=None, versions=manager)])  # type: ignore[arg-type]
    runner, port = await start_web(daemon, "127.0.0.1", 0)
    try:
        config = ctid_yaml(tmp_path / "ctid.yaml", port, token_file)
        yield Daemon(routing_file, config, f"http://127.0.0.1:{port}", manager, secret)
    finally:
        await runner.cleanup()


async def test_reload_history_and_rollback_from_the_command_line(daemon: Daemon) -> None:
    original = daemon.routing_file.read_text()
    daemon.routing_file.write_text(original.replace("ageing_per_s: 1.0", "ageing_per_s: 2.0"))

    reloaded = await daemon.cli("reload")
    assert (reloaded.returncode, reloaded.stdout) == (0, "version 2 routing\n"), reloaded.stderr
    again = await daemon.cli("reload")
    assert (again.returncode, again.stdout) == (0, "version 2 routing (unchanged)\n")

    history = await daemon.cli("config", "history")
    assert history.returncode == 0
    lines = history.stdout.splitlines()
    assert [line[:4] for line in lines] == ["* v2", "  v1"]  # the running one marked
    assert lines[0].endswith("api") and lines[1].endswith("startup")
    first = daemon.manager.history()[-1]["applied_at"]
    at = await daemon.cli("config", "history", "--at", str(first))
    assert at.stdout.split()[0] == "v1"

    rolled = await daemon.cli("config", "rollback")
    assert (rolled.returncode, rolled.stdout) == (0, "version 3 routing\n"), rolled.stderr
    assert daemon.routing_file.read_text() == original
    status, body = await daemon.http("GET", "/api/routing/config")
    assert (status, body) == (200, {"version": 3, "text": original})
    _, newest = await daemon.http("GET", "/api/routing/history")
    assert (newest[0]["version"], newest[0]["source"], newest[0]["current"]) == (3, "rollback to v1", True)


async def test_a_broken_file_is_refused_with_every_error_and_the_running_version_stays(
    daemon: Daemon,
) -> None:
    text = daemon.routing_file.read_text()
    daemon.routing_file.write_text(
        text.replace("ring_timeout_s: 15", "ring_timout_s: 15", 1).replace(
            "ageing_per_s: 1.0", "ageing_per_s: -1"
        )
    )
    status, body = await daemon.http("POST", "/api/routing/reload")
    assert status == 422 and (body["ok"], body["version"]) == (False, 1)

    refused = await daemon.cli("reload")
    assert refused.returncode == 1 and refused.stdout == ""
    stderr = refused.stderr.splitlines()
    assert stderr[0] == "rejected; version 1 keeps routing"
    assert f"{daemon.routing_file}:{line_of(daemon.routing_file, 'ring_timout_s')}:" in stderr[1]
    assert "queues.sales.ring_timout_s: unknown key" in stderr[1]
    assert f"{daemon.routing_file}:{line_of(daemon.routing_file, 'ageing_per_s: -1')}:" in stderr[2]
    assert daemon.manager.current_version == 1
    _, config = await daemon.http("GET", "/api/routing/config")
    assert config == {"version": 1, "text": text}


async def test_rollback_with_nothing_to_roll_back_to_is_refused(daemon: Daemon) -> None:
    status, body = await daemon.http("POST", "/api/routing/rollback")
    assert status == 409 and body["errors"] == ["no earlier version to roll back to"]
    refused = await daemon.cli("config", "rollback")
    assert refused.returncode == 1 and "no earlier version to roll back to" in refused.stderr


async def test_history_at_a_time_before_the_first_version_or_not_a_time(daemon: Daemon) -> None:
    first = daemon.manager.history()[-1]["applied_at"]
    assert (await daemon.http("GET", f"/api/routing/history?at={first - 1}"))[0] == 404
    assert (await daemon.http("GET", "/api/routing/history?at=yesterday"))[0] == 400


def closed_port() -> int:
    """A port that was free a moment ago and has nobody listening on it now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_no_daemon_listening_is_exit_status_2_with_a_hint(tmp_path: Path) -> None:
    config = ctid_yaml(tmp_path / "ctid.yaml", closed_port())
    command = [sys.executable, "-m", "ctid.cli", "reload", "-c", str(config)]
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "ctid is not reachable" in result.stderr and f"ctid run -c {config}" in result.stderr
