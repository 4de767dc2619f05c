"""`ctid run` reloading routing.yaml as an operator does (SIGHUP, `ctid reload`): the file is parsed off the
event loop, so /healthz keeps answering during a slow parse, and a hostile file is refused at once."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.auth_rig import bearer_for_url
from tests.routing.test_versions import many_agents

SAMPLE = Path(__file__).resolve().parents[1] / "config" / "routing.yaml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def request(http: aiohttp.ClientSession, method: str, url: str) -> tuple[int, Any, float]:
    started = time.monotonic()
    async with http.request(method, url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, time.monotonic() - started


async def test_sighup_and_api_reloads_leave_healthz_answering(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    shutil.copy(SAMPLE, routing)
    port = free_port()
    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, port: 1, username: ctid, secret: s3cret}\n"
        f"agi: {{host: 127.0.0.1, port: 0}}\nweb: {{host: 127.0.0.1, port: {port}}}\n"
        f"routing: routing.yaml\ndatabase: sqlite:///{tmp_path}/ctid.db\nspool: {tmp_path}/spool.jsonl\n"
    )
    login = bearer_for_url(f"sqlite:///{tmp_path}/ctid.db")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ctid.cli", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(headers=login) as http:
            for _ in range(600):  # start-up: importing and loading take seconds on a busy machine
                try:
                    await request(http, "GET", base + "/healthz")
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)

            # SIGHUP with a large file: seconds of parsing, in a thread
            staged = tmp_path / ".routing.yaml.new"
            staged.write_text(many_agents(600))
            os.replace(staged, routing)
            daemon.send_signal(signal.SIGHUP)
            sent = time.monotonic()
            slowest = 0.0
            history: list[dict[str, Any]] = []
            while time.monotonic() - sent < 120:
                _, _, took = await request(http, "GET", base + "/healthz")
                slowest = max(slowest, took)
                _, history, _ = await request(http, "GET", base + "/api/routing/history")
                if history[0]["version"] == 2:
                    break
                await asyncio.sleep(0.05)
            applied_after = time.monotonic() - sent
            assert [(v["version"], v["source"]) for v in history] == [(2, "sighup"), (1, "startup")]
            assert slowest < 1.0, (slowest, applied_after)

            # the nested-alias file through `ctid reload` (POST /api/routing/reload): refused at once
            nested = ["x-a: &a [x, x, x, x, x, x, x, x, x]"]
            nested += [
                f"x-{b}: &{b} [" + ", ".join([f"*{a}"] * 9) + "]" for a, b in itertools.pairwise("abcdefghi")
            ]
            routing.write_text(SAMPLE.read_text() + "\n".join(nested) + "\n")
            status, body, took = await request(http, "POST", base + "/api/routing/reload")
            assert status == 422 and took < 2.0, (status, took)
            assert "alias '*d' expands the document beyond 10000 nodes" in body["errors"][0]
            assert body["version"] == 2
            _, _, took = await request(http, "GET", base + "/healthz")
            assert took < 1.0
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
