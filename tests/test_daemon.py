"""The daemon against pbxsim over real TCP: calls, agents, health, and a reconnect after a cut mid-call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctid.config import load_config
from ctid.daemon import Ctid
from ivr.component import IvrComponent
from pbxsim import PbxSimServer, World, call_center_site
from pbxsim.autoroute import AutoRouter
from tests.auth_rig import bearer
from tests.daemon_rig import write_ctid_yaml

AGENTS = ["1001"]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[PbxSimServer, Ctid, str]]:
    world = World(seed=5, endpoints=call_center_site(AGENTS))
    server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1)
    server.observers.append(AutoRouter(world, AGENTS).observe)  # one agent: the first caller gets them
    await server.start()
    config = write_ctid_yaml(tmp_path, server.port)
    ctid = Ctid(load_config(config))
    await ctid.start()
    server.agi_port = ctid.component(IvrComponent).port  # the dialplan's AGI() steps reach this ctid
    await ctid.wait_synced()
    LOGIN.update(bearer(ctid.context.engine))
    yield server, ctid, f"http://127.0.0.1:{ctid.web_port}"
    await ctid.stop()
    await server.stop()


LOGIN: dict[str, str] = {}  # the running site's admin token


async def get(url: str) -> Any:
    async with aiohttp.ClientSession(headers=LOGIN) as http, http.get(url) as resp:
        return await resp.json()


async def eventually(probe: Any, what: str, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def pbxsim_contacts(server: PbxSimServer) -> dict[str, str]:
    """pbxsim's own view: the channels in ctid's contexts, by state as ctid should name it."""
    out = {}
    for ch in server.channels():
        if ch.context == "ctid-wait":
            out[ch.name] = "waiting"
        elif ch.context == "ctid-connect" and ch.bridge:
            out[ch.name] = "connected"
    return out


async def ctid_contacts(base: str) -> dict[str, str]:
    return {c["contact_channel"]: c["state"] for c in await get(f"{base}/api/calls")}


async def test_calls_and_agents_follow_pbxsim_and_survive_a_cut_mid_call(
    site: tuple[PbxSimServer, Ctid, str],
) -> None:
    server, ctid, base = site
    first = await server.call_in("trunk", "4000", cid_num="13800001111", cid_name="张伟")
    await server.advance(5)
    second = await server.call_in("trunk", "4000", cid_num="13900002222", cid_name="Zoë Ångström")
    await server.advance(5)
    expected = {first: "connected", second: "waiting"}
    assert pbxsim_contacts(server) == expected
    await eventually(lambda: _matches(base, expected), "ctid to see one connected, one waiting caller")
    calls = {c["contact_channel"]: c for c in await get(f"{base}/api/calls")}
    assert (calls[first]["caller_name"], calls[first]["agent"]) == ("张伟", "PJSIP/1001")
    assert calls[second]["queue"] == "default"  # set over FastAGI by ctid's IVR
    agents = await get(f"{base}/api/agents")
    assert [(a["device"], a["status"]) for a in agents] == [("PJSIP/1001", "on_call")]

    # the AMI connection dies mid-call; while ctid is blind, the waiting caller hangs up and a new one comes
    assert server.drop_connections() == 1
    waiting = server.world.find_channel(second)
    assert waiting is not None
    server.world.hangup(waiting, 16)
    third = await server.call_in("trunk", "4000", cid_num="13700003333", cid_name="李娜")
    await server.advance(3)
    expected = {first: "connected", third: "waiting"}
    assert pbxsim_contacts(server) == expected
    await eventually(lambda: _matches(base, expected), "ctid to resync to pbxsim's channels")
    health = await get(f"{base}/healthz")
    assert health["ok"] and ctid.servers["pbx1"].connection.reconnects == 1
    calls = {c["contact_channel"]: c for c in await get(f"{base}/api/calls")}
    assert calls[third]["queue"] == "default"  # CTID_QUEUE read back by the resync's Status

    for ch in list(server.world.channels.values()):
        server.world.hangup(ch, 16)
    await server.settle()
    await eventually(lambda: _empty(base), "every call to end")
    history = await get(f"{base}/api/calls/history")
    dispositions = {c["contact_channel"]: c["disposition"] for c in history}
    assert dispositions[first] == "answered"
    assert dispositions[second] == "lost"  # it hung up while ctid could not see it


async def _matches(base: str, expected: dict[str, str]) -> bool:
    return await ctid_contacts(base) == expected


async def _empty(base: str) -> bool:
    return await get(f"{base}/api/calls") == []


async def test_ctid_run_serves_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import socket
    import sys

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    async with PbxSimServer(World(seed=1), host="127.0.0.1", port=0, agi_port=1) as server:
        web, agi = free_port(), free_port()
        config = tmp_path / "ctid.yaml"
        config.write_text(
            f"asterisk:\n  - {{name: pbx1, host: 127.0.0.1, port: {server.port},"
            " username: ctid, secret: ctid}\n"
            f"agi: {{host: 127.0.0.1, port: {agi}}}\nweb: {{host: 127.0.0.1, port: {web}}}\n"
            "log: {format: json, level: info}\n"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ctid.cli", "run", "-c", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip

        async def healthy() -> bool:
            try:
                return bool((await get(f"http://127.0.0.1:{web}/healthz"))["ok"])
            except aiohttp.ClientError:
                return False

        await eventually(healthy, "ctid run to be healthy", timeout=15)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert b'"event": "ctid_stopped"' in output
