"""ctid's FastAGI server against hostile and broken clients over real TCP: a fault ends only its session."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from ivr import Identification
from ivr.fastagi import AgiLimits, AgiSession, FastAgiServer
from ivr.server import IvrServer

UNIQUEID = "1700000000.42"


def environment(script: str = "inbound", name: bytes = b"Zhang Wei", number: bytes = b"13800001111") -> bytes:
    lines = [
        b"agi_network: yes",
        b"agi_network_script: " + script.encode(),
        b"agi_request: agi://127.0.0.1:4573/" + script.encode(),
        b"agi_channel: PJSIP/trunk-00000001",
        b"agi_uniqueid: " + UNIQUEID.encode(),
        b"agi_callerid: " + number,
        b"agi_calleridname: " + name,
        b"agi_extension: 4000",
    ]
    return b"\n".join(lines) + b"\n\n"


@dataclass
class Conversation:
    """What a fake Asterisk saw: the commands ctid sent, and whether ctid closed the socket."""

    commands: list[str] = field(default_factory=list)
    closed_by_ctid: bool = False


async def converse(
    port: int,
    header: bytes,
    answer: Callable[[str], bytes] = lambda _: b"200 result=1\n",
    timeout: float = 2.0,
) -> Conversation:
    """Play Asterisk: send `header`, answer each command with answer(command) until ctid hangs up."""
    out = Conversation()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(header)
        async with asyncio.timeout(timeout):
            while line := await reader.readline():
                command = line.decode().rstrip("\n")
                out.commands.append(command)
                writer.write(answer(command))
        out.closed_by_ctid = True
    except ConnectionResetError:  # closed with our bytes unread: the kernel resets
        out.closed_by_ctid = True
    finally:
        writer.close()
    return out


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@dataclass
class Rig:
    ivr: IvrServer
    identified: list[tuple[str, str]]

    @property
    def port(self) -> int:
        return self.ivr.port


def make_rig(limits: AgiLimits) -> Rig:
    identified: list[tuple[str, str]] = []

    async def identify(caller: str, dnis: str) -> Identification:
        identified.append((caller, dnis))
        return Identification(queue="support", customer="c-17", tier="A")

    return Rig(IvrServer("127.0.0.1", 0, identify, limits=limits), identified)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    # every refusal logged (the budget's own test is the cap's): each fault shows its own line
    rig = make_rig(
        AgiLimits(header_timeout_s=0.3, idle_timeout_s=0.3, max_sessions=50, refusal_log_interval_s=0)
    )
    await rig.ivr.start()
    yield rig
    await rig.ivr.close()


def served(conversation: Conversation) -> bool:
    """The inbound script ran to its end: it set the caller's queue and tier, then let the dialplan go on."""
    return conversation.closed_by_ctid and conversation.commands == [
        'SET VARIABLE CTID_CUSTOMER "c-17"',
        'SET VARIABLE CTID_TIER "A"',
        'SET VARIABLE CTID_QUEUE "support"',
    ]


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def loop_lag(probe: Callable[[], Any]) -> float:
    """The longest the event loop stalled (ticks 10 ms apart) while `probe` runs."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        while not done:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - before - 0.01)

    ticker = asyncio.create_task(tick())
    try:
        await probe()
    finally:
        done = True
        await ticker
    return worst


async def test_an_empty_connection_and_a_half_header_end_only_themselves(rig: Rig) -> None:
    async def faults_then_a_call() -> None:
        _, empty = await asyncio.open_connection("127.0.0.1", rig.port)
        empty.close()
        _, half = await asyncio.open_connection("127.0.0.1", rig.port)
        half.write(environment()[:60])
        await half.drain()
        half.close()
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert served(await converse(rig.port, environment()))
        assert loop.time() - started < 1.0

    with capture_logs() as logs:
        lag = await loop_lag(faults_then_a_call)
    assert lag < 0.2  # panoramisk's header loop spun here for good
    refused = events(logs, "agi_session_refused")
    assert [(e["reason"], e["header_bytes"]) for e in refused] == [("eof", 0), ("eof", 60)]
    assert rig.ivr.server.open_sessions == 0


async def test_an_oversized_header_is_refused_and_the_next_session_served() -> None:
    rig = make_rig(AgiLimits(header_max_bytes=4096, header_max_lines=64, refusal_log_interval_s=0))
    await rig.ivr.start()
    try:
        with capture_logs() as logs:
            long_line = await converse(rig.port, b"agi_network: yes\nagi_calleridname: " + b"x" * 1_000_000)
            many_lines = await converse(rig.port, b"agi_arg_1: x\n" * 100)
            assert served(await converse(rig.port, environment()))
    finally:
        await rig.ivr.close()
    assert long_line.closed_by_ctid and many_lines.closed_by_ctid
    assert (long_line.commands, many_lines.commands) == ([], [])
    assert [e["reason"] for e in events(logs, "agi_session_refused")] == ["header_too_large"] * 2


async def test_a_slow_client_is_cut_at_the_header_timeout(rig: Rig) -> None:
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        writer.write(b"agi_network: yes\nagi_uniqueid: " + UNIQUEID.encode() + b"\nagi_chan")  # then nothing
        assert await closed_within(reader, 1.0)
        writer.close()
        assert served(await converse(rig.port, environment()))
    [refused] = events(logs, "agi_session_refused")
    assert (refused["reason"], refused["waiting_for"], refused["uniqueid"]) == ("timeout", "header", UNIQUEID)


async def test_a_client_speaking_another_protocol_is_refused(rig: Rig) -> None:
    with capture_logs() as logs:
        http = await converse(rig.port, b"GET /healthz HTTP/1.1\r\nHost: ctid\r\n\r\n")
        binary = await converse(rig.port, bytes(range(256)) * 4 + b"\n")
        no_script = await converse(rig.port, b"agi_network: yes\n\n")
        assert served(await converse(rig.port, environment()))
    assert all(c.closed_by_ctid and not c.commands for c in (http, binary, no_script))
    assert [e["reason"] for e in events(logs, "agi_session_refused")] == ["bad_header"] * 3


async def test_a_client_that_stops_answering_is_cut_at_the_idle_timeout(rig: Rig) -> None:
    with capture_logs() as logs:
        silent = await converse(rig.port, environment(), answer=lambda _: b"")
        assert served(await converse(rig.port, environment()))
    assert silent.closed_by_ctid and silent.commands == ['SET VARIABLE CTID_CUSTOMER "c-17"']
    ended = [e for e in events(logs, "agi_session_ended") if e["reason"] != "done"]
    assert [(e["reason"], e["uniqueid"], e["script"]) for e in ended] == [("timeout", UNIQUEID, "inbound")]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"garbage\n", "bad_reply"),
        (b"\x00\xff\xfe\n", "bad_reply"),
        (b"HANGUP\n", "hangup"),
        (b"511 Command Not Permitted on a dead channel or intercept routine\n", "hangup"),
        (
            b"520-Invalid command syntax.  Proper usage follows:\nUsage: SET VARIABLE\n520 End\n",
            "usage_error",
        ),
    ],
)
async def test_a_reply_that_is_not_a_result_ends_the_session_cleanly(
    rig: Rig, reply: bytes, reason: str
) -> None:
    with capture_logs() as logs:
        broken = await converse(rig.port, environment(), answer=lambda _: reply)
        assert served(await converse(rig.port, environment()))
    assert broken.closed_by_ctid and len(broken.commands) == 1
    [ended] = [e for e in events(logs, "agi_session_ended") if e["reason"] != "done"]
    assert (ended["reason"], ended["uniqueid"]) == (reason, UNIQUEID)
    assert not events(logs, "agi_script_failed")


async def test_an_unknown_command_reply_lets_the_script_go_on(rig: Rig) -> None:
    with capture_logs() as logs:
        conversation = await converse(
            rig.port, environment(), answer=lambda _: b"510 Invalid or unknown command\n"
        )
    assert served(conversation)
    assert len(events(logs, "agi_command_failed")) == 3


async def test_a_latin1_caller_name_is_decoded_and_the_caller_identified(rig: Rig) -> None:
    seen: list[AgiSession] = []

    async def show(session: AgiSession) -> None:
        seen.append(session)

    names = FastAgiServer("127.0.0.1", 0, {"show": show})
    await names.start()
    try:
        await converse(names.port, environment("show", name=b"Mu\xf1oz"))
    finally:
        await names.close()
    assert seen[0].env["agi_calleridname"] == "Muñoz"

    with capture_logs() as logs:
        conversation = await converse(rig.port, environment(name=b"Mu\xf1oz \xc9lodie"))
    assert served(conversation)  # CTID_QUEUE and CTID_TIER are set
    assert rig.identified == [("13800001111", "4000")]
    assert not events(logs, "agi_script_failed") and not events(logs, "agi_session_refused")
    assert "Mu" not in repr(logs) and "13800001111" not in repr(logs)  # names and numbers never logged


async def test_connections_over_the_cap_are_closed_at_once_and_logged_once() -> None:
    rig = make_rig(AgiLimits(max_sessions=3, header_timeout_s=30, refusal_log_interval_s=60))
    await rig.ivr.start()
    idle = [await asyncio.open_connection("127.0.0.1", rig.port) for _ in range(3)]
    try:
        await asyncio.sleep(0.05)
        assert rig.ivr.server.open_sessions == 3
        with capture_logs() as logs:
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
                assert await closed_within(reader, 1.0)
                writer.close()
            assert rig.ivr.server.refused["over_capacity"] == 20
            idle.pop()[1].close()  # one session frees its place: the next call is served
            await asyncio.sleep(0.05)
            assert served(await converse(rig.port, environment()))
        refused = [e for e in events(logs, "agi_session_refused") if e["reason"] == "over_capacity"]
        assert [(e["count"], e["max_sessions"]) for e in refused] == [(1, 3)]
        assert refused[0]["log_level"] == "warning"
    finally:
        for _, writer in idle:
            writer.close()
        await rig.ivr.close()


async def test_accept_out_of_file_descriptors_neither_spins_nor_floods_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FastAgiServer("127.0.0.1", 0, {}, AgiLimits(accept_retry_s=0.1, refusal_log_interval_s=60))
    loop = asyncio.get_running_loop()
    attempts = 0

    async def exhausted(sock: socket.socket) -> tuple[socket.socket, Any]:
        nonlocal attempts
        attempts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(loop, "sock_accept", exhausted)
    with capture_logs() as logs:
        await server.start()
        await asyncio.sleep(0.55)
        await server.close()
    assert 3 <= attempts <= 7  # one try per accept_retry_s, not a busy loop
    refused = events(logs, "agi_session_refused")
    assert [(e["reason"], e["error"]) for e in refused] == [("file_limit", "EMFILE")]
