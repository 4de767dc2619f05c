"""/healthz against a raw TCP AMI peer that goes silent: not ok within two ping intervals, ok again after."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from ctid.config import load_config
from ctid.daemon import Ctid
from tests.ami.test_client import ScriptedAmi
from tests.daemon_rig import write_ctid_yaml


async def healthz(base: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as resp:
        return resp.status, await resp.json()


async def wait_status(base: str, status: int, what: str, timeout: float) -> tuple[float, Any]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        got, body = await healthz(base)
        if got == status:
            return loop.time() - start, body
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}: {got} {body}")
        await asyncio.sleep(0.02)


async def test_healthz_fails_while_asterisk_is_silent_and_the_session_is_redone(tmp_path: Path) -> None:
    peer = ScriptedAmi(secret="ctid")
    await peer.start()
    config = write_ctid_yaml(
        tmp_path,
        peer.port,
        "ping_interval_s: 0.1, action_timeout_s: 1, reconnect_min_s: 0.5, reconnect_max_s: 0.5",
    )
    ctid = Ctid(load_config(config))
    await ctid.start()
    try:
        await ctid.wait_synced()
        base = f"http://127.0.0.1:{ctid.web_port}"
        _, body = await wait_status(base, 200, "ctid healthy", timeout=2.0)
        assert body["servers"]["pbx1"]["live"] is True
        peer.muted.add(peer.writers[0])  # TCP stays up; no answers, no events
        took, body = await wait_status(base, 503, "/healthz to notice the silence", timeout=2.0)
        assert took < 1.0  # two ping intervals (0.2 s), plus polling on a busy machine
        assert body["servers"]["pbx1"]["live"] is False and not body["ok"]
        _, body = await wait_status(base, 200, "a new session, resynced", timeout=5.0)
        assert body["servers"]["pbx1"]["live"] is True and peer.sessions == 2
    finally:
        await ctid.stop()
        await peer.close()
