"""ctid's FastAGI server inside the daemon, against pbxsim: hostile connections never stop routing.

The subprocess tests run `ctid run` as production does (its own event loop, its own file limit), so a
server that spins or runs out of descriptors shows as a /healthz that stops answering, not a hung test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ctid.config import load_config
from ctid.daemon import Ctid
from ivr.component import IvrComponent
from pbxsim import PbxSimServer, World, WorldClock, call_center_site
from pbxsim.dialplan import REFERENCE_DIALPLAN, Dialplan
from tests.auth_rig import bearer, bearer_for_url

START = 1_795_402_800.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(url: str, timeout: float = 2.0, login: dict[str, str] | None = None) -> tuple[int, Any]:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout, headers=login) as http,
        http.get(url) as resp,
    ):
        return resp.status, await resp.json()


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class CtidProcess:
    process: asyncio.subprocess.Process
    web: str
    agi_port: int
    output: bytearray
    login: dict[str, str]  # an admin's bearer token

    def log_lines(self, event: str) -> list[dict[str, Any]]:
        lines = [
            json.loads(line) for line in self.output.decode(errors="replace").splitlines() if line[:1] == "{"
        ]
        return [line for line in lines if line.get("event") == event]


@contextlib.asynccontextmanager
async def ctid_run(
    tmp_path: Path, ami_port: int, agi: str = "", file_limit: int | None = None
) -> AsyncIterator[CtidProcess]:
    """`ctid run` in a subprocess (with RLIMIT_NOFILE lowered to `file_limit`), healthy; SIGTERM after."""
    web, agi_port = free_port(), free_port()
    config = tmp_path / "ctid.yaml"
    config.write_text(
        f"asterisk:\n  - {{name: pbx1, host: 127.0.0.1, port: {ami_port}, username: ctid, secret: ctid,"
        " reconnect_min_s: 0.05, reconnect_max_s: 0.5}\n"
        f"agi: {{host: 127.0.0.1, port: {agi_port}{agi}}}\nweb: {{host: 127.0.0.1, port: {web}}}\n"
        f"database: sqlite:///{tmp_path}/ctid.db\nspool: {tmp_path}/spool.jsonl\n"
        "log: {format: json, level: info}\n"
    )

    def limit_files() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

    login = bearer_for_url(f"sqlite:///{tmp_path}/ctid.db")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctid.cli", "run", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, preexec_fn=limit_files,
    )  # fmt: skip
    output = bytearray()

    async def collect() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            output.extend(chunk)

    collector = asyncio.create_task(collect())
    running = CtidProcess(process, f"http://127.0.0.1:{web}", agi_port, output, login)

    async def healthy() -> bool:
        try:
            return bool((await get(f"{running.web}/healthz"))[1]["ok"])
        except (aiohttp.ClientError, TimeoutError):
            return False

    try:
        await eventually(healthy, "ctid run to be healthy", timeout=20)
        yield running
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.wait_for(collector, 5)


async def served_by_ctid(server: PbxSimServer, cid_name: str = "Zhang Wei") -> bool:
    """A caller's inbound AGI step ran to its end: pbxsim's channel has CTID_QUEUE and AGISTATUS=SUCCESS."""
    name = await server.call_in("trunk", "4000", cid_num="13800001111", cid_name=cid_name)
    await server.advance(1)  # Answer(), then the AGI step (virtual time waits for the session)
    channel = server.world.find_channel(name)
    assert channel is not None
    queue = server.world.lookup(channel, "CTID_QUEUE")
    status = server.world.lookup(channel, "AGISTATUS")
    server.world.hangup(channel, 16)
    await server.settle()
    return bool(queue) and status == "SUCCESS"


# Asterisk's environment, cut off (a process or a link dying mid-header)
HALF_HEADER = b"agi_network: yes\nagi_network_script: inbound\nagi_uniqueid: 1700000000.7\nagi_chan"


async def test_an_empty_connection_and_a_half_header_leave_ctid_serving(tmp_path: Path) -> None:
    world = World(seed=5, endpoints=call_center_site(["1001"]))
    async with PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1) as server:
        async with ctid_run(tmp_path, server.port) as ctid:
            server.agi_port = ctid.agi_port
            _, empty = await asyncio.open_connection("127.0.0.1", ctid.agi_port)
            empty.close()
            _, half = await asyncio.open_connection("127.0.0.1", ctid.agi_port)
            half.write(HALF_HEADER)
            await half.drain()
            half.close()
            await asyncio.sleep(0.2)
            async with asyncio.timeout(1.0):  # panoramisk's loop spun here: /healthz never answered again
                status, health = await get(f"{ctid.web}/healthz", timeout=1.0)
            assert status == 200 and health["ok"]
            async with asyncio.timeout(5.0):
                assert await served_by_ctid(server)
        refused = ctid.log_lines("agi_session_refused")
    assert ctid.process.returncode == 0  # and SIGTERM still stops it
    assert [(e["reason"], e["header_bytes"], e["uniqueid"]) for e in refused] == [
        ("eof", 0, ""),
        ("eof", len(HALF_HEADER), "1700000000.7"),
    ]


async def test_1100_idle_agi_connections_under_a_1024_file_limit_leave_http_and_ami_working(
    tmp_path: Path,
) -> None:
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 2500, "the test itself holds 1,100 sockets"
    world = World(seed=5, endpoints=call_center_site(["1001"]))
    async with PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1) as server:
        # idle connections are held for as long as the test needs them, not cut by the header timeout
        async with ctid_run(tmp_path, server.port, ", header_timeout_s: 120", file_limit=1024) as ctid:
            server.agi_port = ctid.agi_port
            idle = []
            try:
                for _ in range(1100):
                    idle.append(await asyncio.open_connection("127.0.0.1", ctid.agi_port))
                await asyncio.sleep(0.5)
                async with asyncio.timeout(2.0):
                    status, health = await get(f"{ctid.web}/healthz", timeout=2.0)
                assert status == 200 and health["servers"]["pbx1"]["connected"] and health["ok"]
                status, _ = await get(f"{ctid.web}/api/calls", timeout=2.0, login=ctid.login)
                assert status == 200

                # AMI still flows: a new caller shows in ctid's live calls (its IVR step refused at the cap)
                caller = await server.call_in("trunk", "4000", cid_num="13800002222", cid_name="Li Na")

                async def seen() -> bool:
                    calls = (await get(f"{ctid.web}/api/calls", login=ctid.login))[1]
                    return any(c["contact_channel"] == caller for c in calls)

                await eventually(seen, "ctid to see the new caller over AMI", timeout=5)
                # the AMI connection survives a cut too: it reconnects under the same file limit
                assert server.drop_connections() == 1

                async def reconnected() -> bool:
                    health = (await get(f"{ctid.web}/healthz"))[1]
                    return bool(health["ok"] and health["servers"]["pbx1"]["gaps"] == 1)

                await eventually(reconnected, "ctid to reconnect to AMI", timeout=5)
            finally:
                for _, writer in idle:
                    writer.close()
            await asyncio.sleep(0.3)
            async with asyncio.timeout(5.0):
                assert await served_by_ctid(server)
        refused = [e for e in ctid.log_lines("agi_session_refused") if e["reason"] == "over_capacity"]
        started = ctid.log_lines("agi_listening")
    assert started[0]["max_sessions"] == 256  # a quarter of 1,024
    # 844 refusals, a handful of lines (one per 5 s at most), not megabytes
    assert 1 <= len(refused) <= 3 and refused[0]["count"] == 1
    assert not ctid.log_lines("agi_session_refused_file_limit") and len(ctid.output) < 200_000


ROUTING = """\
queues:
  support:
    skills: {support: 3}
    strategy: longest_idle
    ring_timeout_s: 10
    max_wait_s: 3000
dnis:
  "4000": support
agents:
  - {id: alice, name: Alice, device: PJSIP/1001, skills: {support: 5}, queues: [support]}
"""
# the trunk sends its caller names in Latin-1, bytes that are not UTF-8
LATIN1_TRUNK = REFERENCE_DIALPLAN.replace(
    "[ctid-inbound]\nexten => _X.,1,Answer()",
    "[ctid-inbound]\nexten => _X.,1,Set(SIM_AGI_CHARSET=latin-1)\n same => n,Answer()",
)


async def test_a_latin1_caller_name_is_routed_to_their_queue(tmp_path: Path) -> None:
    world = World(seed=7, start=START, endpoints=call_center_site(["1001"]), dialplan=Dialplan(LATIN1_TRUNK))
    async with PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1) as server:
        (tmp_path / "routing.yaml").write_text(ROUTING)
        config = tmp_path / "ctid.yaml"
        config.write_text(
            f"asterisk:\n  - {{name: pbx1, host: 127.0.0.1, port: {server.port}, username: ctid,"
            " secret: ctid}\n"
            "agi: {host: 127.0.0.1, port: 0}\nweb: {host: 127.0.0.1, port: 0}\n"
            f"database: sqlite:///{tmp_path}/ctid.db\nspool: {tmp_path}/spool.jsonl\nrouting: routing.yaml\n"
        )
        ctid = Ctid(load_config(config), clock=WorldClock(world))
        await ctid.start()
        try:
            server.agi_port = ctid.component(IvrComponent).port
            await ctid.wait_synced()
            base = f"http://127.0.0.1:{ctid.web_port}"
            ready = {"state": "ready"}
            login = bearer(ctid.context.engine)
            async with (
                aiohttp.ClientSession(headers=login) as http,
                http.post(f"{base}/api/agents/alice/state", json=ready) as r,
            ):
                assert r.status == 200
            caller = await server.call_in("trunk", "4000", cid_num="13800001111", cid_name="Muñoz Élodie")
            await server.advance(1)
            channel = world.find_channel(caller)
            assert channel is not None
            assert (world.lookup(channel, "AGISTATUS"), world.lookup(channel, "CTID_QUEUE")) == (
                "SUCCESS",
                "support",
            )
            assert world.lookup(channel, "CTID_TIER")

            async def connected() -> bool:
                for _ in range(4):
                    await server.advance(0.5)
                    await asyncio.sleep(0.02)
                calls = (await get(f"{base}/api/calls", login=login))[1]
                return any(c["contact_channel"] == caller and c["agent"] == "PJSIP/1001" for c in calls)

            await eventually(connected, "the Latin-1 caller to be connected to alice", timeout=10)
        finally:
            await ctid.stop()
