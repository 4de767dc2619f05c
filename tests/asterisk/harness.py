"""The pieces the Asterisk integration tests are built from: a real Asterisk started by a launcher script,
ctid run as its own process, ctid's HTTP API, a driver that plays customers and the router over AMI, and an
agent's SIP phone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiohttp
from pyVoIP.VoIP import PhoneStatus, VoIPCall, VoIPPhone

from tests.asterisk.amiclient import Message, TestAmiClient, event

REPO = Path(__file__).resolve().parents[2]
CONTRACT_DIALPLAN = REPO / "config" / "asterisk" / "extensions_ctid.conf"
SIM_DIALPLAN = Path(__file__).resolve().parent / "conf" / "extensions_sim.conf"
SIP_ENDPOINTS = Path(__file__).resolve().parent / "conf" / "pjsip.conf"
AGI_PORT = 4573  # fixed by the contract dialplan: AGI(agi://${CTID_HOST}:4573/...)

T = TypeVar("T")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def poll(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    what: str,
    timeout: float = 5.0,
    interval: float = 0.05,
) -> T:
    """Probe until `done(value)`; on timeout fail with what was awaited and the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen: {value!r}")
        await asyncio.sleep(interval)


# ---- Asterisk ------------------------------------------------------------------------------------------


class AstChannel(NamedTuple):
    """One line of `core show channels concise`."""

    name: str
    context: str
    exten: str
    priority: str
    state: str
    application: str
    data: str
    caller_id: str
    duration_s: int
    bridge_id: str
    uniqueid: str


def parse_concise(text: str) -> list[AstChannel]:
    """`Channel!Context!Exten!Prio!State!App!Data!CallerID!Accountcode!Peeraccount!AMAflags!Duration!BridgeID!Uniqueid`.

    Application data may itself hold `!`, so the fields after it are counted from the end.
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("!")
        if len(parts) < 14:
            raise ValueError(f"not a concise channel line: {line!r}")
        name, context, exten, prio, state, app = parts[:6]
        caller_id, _acct, _peer, _ama, duration, bridge, uniqueid = parts[-7:]
        data = "!".join(parts[6:-7])
        out.append(
            AstChannel(
                name, context, exten, prio, state, app, data, caller_id, int(duration), bridge, uniqueid
            )
        )
    return out


@dataclass
class AsteriskInstance:
    launcher: Path
    directory: Path
    conf_dir: Path
    ami_port: int
    sip_port: int
    username: str
    secret: str

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AMI_PORT": str(self.ami_port),
            "SIP_PORT": str(self.sip_port),
            "AMI_USER": self.username,
            "AMI_SECRET": self.secret,
        }

    def start(self) -> None:
        subprocess.run(
            [str(self.launcher), "start", str(self.directory), str(self.conf_dir)],
            env=self._env(),
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def stop(self) -> None:
        subprocess.run(
            [str(self.launcher), "stop", str(self.directory)], env=self._env(), timeout=30, check=False
        )

    def cli(self, command: str) -> str:
        done = subprocess.run(
            [str(self.launcher), "cli", str(self.directory), command],
            env=self._env(),
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def channels(self) -> list[AstChannel]:
        return parse_concise(self.cli("core show channels concise"))

    def ami_session_fds(self) -> list[int]:
        """The file descriptors of the connected AMI sessions (`manager show connected`)."""
        fds = []
        for line in self.cli("manager show connected").splitlines():
            fields = line.split()
            # Username IP Start Elapsed FileDes HttpCnt ReadPerms WritePerms
            if len(fields) == 8 and fields[4].isdigit():
                fds.append(int(fields[4]))
        return fds


def assemble_conf_dir(target: Path) -> Path:
    """extensions.conf = the project's contract dialplan followed by the test-only sim-* contexts;
    pjsip.conf = the SIP endpoints of the agents' phones."""
    target.mkdir(parents=True, exist_ok=True)
    text = (
        "; assembled by tests/asterisk/conftest.py\n[general]\nstatic = yes\nwriteprotect = yes\n\n"
        + CONTRACT_DIALPLAN.read_text(encoding="utf-8")
        + "\n\n"
        + SIM_DIALPLAN.read_text(encoding="utf-8")
    )
    (target / "extensions.conf").write_text(text, encoding="utf-8")
    (target / "pjsip.conf").write_text(SIP_ENDPOINTS.read_text(encoding="utf-8"), encoding="utf-8")
    return target


# ---- ctid as a process --------------------------------------------------------------------------------


@dataclass
class CtidProcess:
    """`ctid run -c FILE` in a subprocess; everything the tests learn from it comes over HTTP."""

    config_path: Path
    log_path: Path
    web_port: int
    login: dict[str, str]  # an admin's bearer token, added to ctid's database before it starts
    agent_login: dict[str, str]  # DESK_AGENT's login (an agent user), added with the admin's
    process: subprocess.Popen[bytes] | None = None

    @property
    def ami_log_path(self) -> Path:
        """Every byte ctid received over AMI (`ctid run --ami-log`), for `ctid replay` after a failure."""
        return self.log_path.with_name("ami.log")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> None:
        script = Path(sys.executable).with_name("ctid")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "ctid.cli"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "run", "-c", str(self.config_path), "--ami-log", str(self.ami_log_path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_errors(self, since: int) -> list[str]:
        """Log lines from byte offset `since` on at level error or above, or carrying a traceback."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", errors="replace")
        problems = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(line)  # not one of ctid's JSON lines: a traceback or a crash on stderr
                continue
            serious = isinstance(record, dict) and (
                record.get("level") in ("error", "critical") or "exception" in record
            )
            if serious or not isinstance(record, dict):
                problems.append(line)
        return problems

    def check_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"ctid exited with status {code}; its log ends:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, as a service manager would; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            return None


# ctid routes the sales and 200 queues itself (tests/asterisk/test_routing.py) and desk, whose only agent
# answers on a SIP phone (tests/asterisk/test_desktop.py); the other tests play the router for queues
# "default" and "vip", whose only agent never logs in, so ctid leaves those calls to them (a queue
# routing.yaml lacks would not do: ctid puts such callers in their number's queue or default_queue).
ROUTING_YAML = """\
queues:
  default: {ring_timeout_s: 3, wrap_up_s: 0, max_wait_s: 3000}
  sales: {skills: {sales: 3}, strategy: longest_idle, ring_timeout_s: 3, wrap_up_s: 0, max_wait_s: 3000}
  "200": {skills: {support: 3}, strategy: longest_idle, ring_timeout_s: 3, wrap_up_s: 0, max_wait_s: 3000}
  vip: {ring_timeout_s: 3, wrap_up_s: 0, max_wait_s: 3000}
  desk: {ring_timeout_s: 20, wrap_up_s: 0, max_wait_s: 3000}
default_queue: default
dnis: {"4100": sales, "4200": desk}
agents:
  - {id: alice, name: Alice, device: Local/1011@sim-phones, skills: {sales: 5}, queues: [sales]}
  - {id: bob, name: Bob, device: Local/9012@sim-phones, skills: {sales: 5}, queues: [sales]}
  - {id: carol, name: Carol, device: Local/1013@sim-phones, skills: {support: 5}, queues: ["200"]}
  - {id: dana, name: Dana, device: Local/1019@sim-phones, queues: [default, vip]}
  - {id: erin, name: Erin, device: PJSIP/1001, queues: [desk]}
priorities:
  base: {A: 100, B: 50, C: 10}
  ageing_per_s: 0.1
  head_start_after_s: 2
pause_reasons: [no-answer, break]
"""
ROUTING_AGENTS = ("alice", "bob", "carol", "dana")
DESK_AGENT, DESK_DNIS = "erin", "4200"  # the agent with a SIP phone (PJSIP/1001), and the number of her queue


def write_ctid_config(path: Path, *, ami_port: int, username: str, secret: str, web_port: int) -> None:
    (path.parent / "routing.yaml").write_text(ROUTING_YAML, encoding="utf-8")
    path.write_text(
        f"""\
asterisk:
  - name: pbx1
    host: 127.0.0.1
    port: {ami_port}
    username: {username}
    secret: "{secret}"
    connect_timeout_s: 2
    action_timeout_s: 3
    reconnect_min_s: 0.2
    reconnect_max_s: 0.5
agi:
  host: 127.0.0.1
  port: {AGI_PORT}
web:
  host: 127.0.0.1
  port: {web_port}
database: sqlite:///{path.parent / "ctid.db"}
spool: {path.parent / "spool.jsonl"}
routing: routing.yaml
log:
  format: json
  level: info
""",
        encoding="utf-8",
    )


class CtidHttp:
    """ctid's HTTP API, as an agent desktop or a wallboard would use it."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base_url + path) as response:
            body = (
                await response.json()
                if response.content_type == "application/json"
                else await response.text()
            )
            return response.status, body

    async def get_ok(self, path: str) -> Any:
        status, body = await self.get(path)
        assert status == 200, f"GET {path}: HTTP {status}: {body!r}"
        return body

    async def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = await self.get_ok("/api/calls")
        return calls

    async def history(self) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = await self.get_ok("/api/calls/history")
        return history

    async def agents(self) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = await self.get_ok("/api/agents")
        return agents

    async def wait_call(
        self, linkedid: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 5.0
    ) -> dict[str, Any]:
        """The live call `linkedid` once `done(call)` holds."""

        async def probe() -> dict[str, Any] | None:
            return next((c for c in await self.calls() if c["linkedid"] == linkedid), None)

        call = await poll(
            probe, lambda c: c is not None and done(c), what=f"call {linkedid} {what}", timeout=timeout
        )
        assert call is not None
        return call

    async def wait_ended(self, linkedid: str, timeout: float = 5.0) -> dict[str, Any]:
        """The call `linkedid` from /api/calls/history, once it is gone from /api/calls."""

        async def probe() -> tuple[bool, dict[str, Any] | None]:
            live = any(c["linkedid"] == linkedid for c in await self.calls())
            ended = next((c for c in await self.history() if c["linkedid"] == linkedid), None)
            return live, ended

        _, ended = await poll(
            probe, lambda v: not v[0] and v[1] is not None, what=f"call {linkedid} to end", timeout=timeout
        )
        assert ended is not None
        return ended


def kinds(call: dict[str, Any]) -> list[str]:
    """The domain events of a call's timeline, without bookkeeping entries."""
    skip = {"call_started", "CallVariable", "after", "attended_transfer_event"}
    return [e["kind"] for e in call["timeline"] if e["kind"] not in skip]


def timeline_events(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in call["timeline"] if e["kind"] == kind]


# ---- comparing ctid with Asterisk -----------------------------------------------------------------------

# What ctid should say of a contact, from the context (and bridge) Asterisk shows its channel in.
_EXPECTED_STATES = {
    "ctid-inbound": {"ivr"},
    "ctid-outbound": {"ivr"},
    "ctid-wait": {"waiting"},
    "ctid-after": {"after"},
}


def _expected_states(chan: AstChannel) -> set[str] | None:
    if chan.context == "ctid-connect":
        return {"connected", "held"} if chan.bridge_id else {"ringing"}
    return _EXPECTED_STATES.get(chan.context)  # ctid-transfer, ctid-abandon: passing through


async def assert_matches_asterisk(http: CtidHttp, asterisk: AsteriskInstance, timeout: float = 3.0) -> None:
    """ctid's live contacts are exactly Asterisk's channels in ctid-* contexts, in agreeing states."""

    async def probe() -> tuple[dict[str, str], dict[str, AstChannel]]:
        calls = await http.calls()
        channels = await asyncio.to_thread(asterisk.channels)
        ours = {c["contact_channel"]: c["state"] for c in calls if c["contact_channel"]}
        theirs = {ch.name: ch for ch in channels if ch.context.startswith("ctid-")}
        return ours, theirs

    def agree(view: tuple[dict[str, str], dict[str, AstChannel]]) -> bool:
        ours, theirs = view
        if set(ours) != set(theirs):
            return False
        for name, chan in theirs.items():
            expected = _expected_states(chan)
            if expected is not None and ours[name] not in expected:
                return False
        return True

    await poll(
        probe, agree, what="ctid's contacts to match Asterisk's channels in ctid-* contexts", timeout=timeout
    )


async def assert_nothing_up(http: CtidHttp, asterisk: AsteriskInstance, timeout: float = 5.0) -> None:
    """Asterisk has no channels and ctid reports no live calls."""

    async def probe() -> tuple[list[str], list[str]]:
        channels = [c.name for c in await asyncio.to_thread(asterisk.channels)]
        return channels, [f"{c['linkedid']} {c['state']} {c['contact_channel']}" for c in await http.calls()]

    await poll(
        probe, lambda v: v == ([], []), what="no channels in Asterisk and no calls in ctid", timeout=timeout
    )


# ---- playing customers and the router -------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """A customer's channel as it sits in ctid-wait: the channel ctid calls the contact."""

    channel: str
    uniqueid: str
    linkedid: str


class Pbx:
    """Drives Asterisk over AMI the way capture.py did: Originate callers, Setvar + Redirect as the router."""

    def __init__(self, ami: TestAmiClient) -> None:
        self.ami = ami

    async def inbound_call(
        self, number: str, name: str, patience_s: int = 3600, exten: str = "4000", charset: str = "utf-8"
    ) -> Contact:
        """A customer (Local/pN@sim-callers) calls `exten` in ctid-inbound; returns once in ctid-wait.

        `charset` is how the caller's name is sent (latin-1, as many trunks do)."""
        mark = self.ami.mark()
        await self.ami.action(
            "Originate",
            charset=charset,
            Channel=f"Local/p{patience_s}@sim-callers",
            Context="ctid-inbound",
            Exten=exten,
            Priority="1",
            CallerID=f'"{name}" <{number}>',
            Async="true",
            Timeout="10000",
        )
        waiting = await self.ami.wait_for(
            event("Newexten", Context="ctid-wait", CallerIDNum=number, Application="MusicOnHold"), after=mark
        )
        return Contact(waiting["Channel"], waiting["Uniqueid"], waiting["Linkedid"])

    async def offer(self, contact: Contact, agent_dial: str, ring_timeout_s: int | None = None) -> int:
        """Route the contact to an agent: Setvar CTID_AGENT_DIAL (+ CTID_RING_TIMEOUT), Redirect it.

        Returns the message mark taken before the Redirect."""
        await self.ami.action("Setvar", Channel=contact.channel, Variable="CTID_AGENT_DIAL", Value=agent_dial)
        if ring_timeout_s is not None:
            await self.ami.action(
                "Setvar", Channel=contact.channel, Variable="CTID_RING_TIMEOUT", Value=str(ring_timeout_s)
            )
        mark = self.ami.mark()
        await self.ami.action(
            "Redirect", Channel=contact.channel, Context="ctid-connect", Exten="s", Priority="1"
        )
        return mark

    async def connect(self, contact: Contact, agent_dial: str) -> str:
        """Offer the contact to an agent who answers; returns the agent's channel once they are bridged."""
        mark = await self.offer(contact, agent_dial)
        answered = await self.ami.wait_for(
            event("DialEnd", DialStatus="ANSWER", Uniqueid=contact.uniqueid), after=mark, timeout=10
        )
        await self.ami.wait_for(event("BridgeEnter", Uniqueid=contact.uniqueid), after=mark)
        return answered["DestChannel"]

    async def hangup(self, channel: str) -> None:
        await self.ami.action("Hangup", Channel=channel, Cause="16")

    async def wait_gone(self, uniqueid: str, timeout: float = 10.0) -> Message:
        return await self.ami.wait_for(event("Hangup", Uniqueid=uniqueid), timeout=timeout)


# ---- an agent's SIP phone -------------------------------------------------------------------------------

# pyVoIP's media ports: above Asterisk's own RTP range (5000-31000 unless rtp.conf says otherwise)
PHONE_RTP_PORTS = (41000, 41099)


class SipPhone:
    """A SIP phone (a pyVoIP user agent) registered to the test Asterisk as endpoint `user` (password
    `secret` + user, conf/pjsip.conf). A call to it rings until the test answers it."""

    def __init__(self, asterisk: AsteriskInstance, user: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._incoming: asyncio.Queue[VoIPCall] = asyncio.Queue()
        self.phone = VoIPPhone(
            "127.0.0.1",
            asterisk.sip_port,
            user,
            f"secret{user}",
            myIP="127.0.0.1",
            callCallback=self._on_call,
            sipPort=free_port(socket.SOCK_DGRAM),
            rtpPortLow=PHONE_RTP_PORTS[0],
            rtpPortHigh=PHONE_RTP_PORTS[1],
        )

    def _on_call(self, call: VoIPCall) -> None:
        """pyVoIP's thread, a second after the INVITE (it has sent 180 Ringing): hand the call to the test."""
        self._loop.call_soon_threadsafe(self._incoming.put_nowait, call)

    async def register(self) -> None:
        await asyncio.to_thread(self.phone.start)  # REGISTER, answered before it returns
        assert self.phone.get_status() is PhoneStatus.REGISTERED, self.phone.get_status()

    async def ringing(self, timeout: float = 10.0) -> VoIPCall:
        """The next call that rings this phone."""
        return await asyncio.wait_for(self._incoming.get(), timeout)

    async def stop(self) -> None:
        """Hang up whatever is answered and unregister."""
        await asyncio.to_thread(self.phone.stop)
