"""ctid's own FastAGI server: sessions no client can stall, bounded in size, time and number.

panoramisk's FastAGI loop spins at end of file, decodes strictly as UTF-8 and has no limits, so ctid
reads the AGI protocol itself: every read is bounded in bytes and in time, each fault ends only its own
session (logged once, with the call's uniqueid when known and a reason), and connections beyond a cap
below the process's file limit are closed at once.
"""

from __future__ import annotations

import asyncio
import errno
import re
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ctid.errors import CtidError
from ctid.metrics import AGI_SESSIONS

log = structlog.get_logger("ctid.ivr")

# accept() failing for want of a file descriptor or memory: wait, never spin
_ACCEPT_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# the peer went away between the kernel's accept and ours
_ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EAGAIN})
MAX_SESSIONS_CEILING = 512
_REPLY_200 = re.compile(r"200 result=(\S*)(.*)")


def default_max_sessions(soft_file_limit: int | None = None) -> int:
    """A quarter of the open-file limit (the rest is for HTTP, AMI and the database), at most 512."""
    if soft_file_limit is None:
        soft_file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_file_limit == resource.RLIM_INFINITY or soft_file_limit < 0:
        return MAX_SESSIONS_CEILING
    return max(1, min(MAX_SESSIONS_CEILING, soft_file_limit // 4))


@dataclass(frozen=True, slots=True)
class AgiLimits:
    """What one FastAGI client may cost: header size and time, reply wait, and concurrent sessions."""

    max_sessions: int | None = None  # None: default_max_sessions() when the server starts
    header_max_bytes: int = 64 * 1024  # the whole agi_* environment; also the longest reply line
    header_max_lines: int = 256
    header_timeout_s: float = 5.0  # to send the whole environment
    idle_timeout_s: float = 60.0  # the longest wait for one command's reply (prompts included)
    refusal_log_interval_s: float = 5.0  # at most one log line per refusal reason in this time
    accept_retry_s: float = 0.5  # pause after accept() found no file descriptor


class AgiSessionEnded(CtidError):
    """A FastAGI session ends before its script is done: `reason` says why (eof, timeout, bad_reply...)."""

    def __init__(self, reason: str, **context: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.context = context


@dataclass(frozen=True, slots=True)
class AgiReply:
    """Asterisk's answer to one AGI command: `200 result=1 (value)` is code 200, result "1", data "value"."""

    code: int
    result: str = ""
    data: str = ""
    line: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200


def decode_line(raw: bytes) -> str:
    """One line as text: UTF-8, or Latin-1 when it is not (many trunks send caller names in Latin-1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_environment_line(line: str) -> tuple[str, str] | None:
    """`agi_name: value` as (name, value); None for anything else."""
    name, sep, value = line.partition(":")
    if not sep or not name.startswith("agi_") or not name.isascii() or " " in name:
        return None
    return name, value.strip()


def parse_reply(line: str) -> AgiReply:
    """One reply line as an AgiReply; AgiSessionEnded for a hangup, a usage error or garbage."""
    if line == "HANGUP":
        raise AgiSessionEnded("hangup")
    match = _REPLY_200.fullmatch(line)
    if match is not None:
        result, rest = match.group(1), match.group(2).strip()
        data = rest[1 : rest.rfind(")")] if rest.startswith("(") and ")" in rest else ""
        return AgiReply(200, result, data, line)
    code = line[:3]
    if len(code) == 3 and code.isdigit() and code[0] == "5" and line[3:4] in ("", " ", "-"):
        if code == "511":  # Command Not Permitted on a dead channel: the caller hung up
            raise AgiSessionEnded("hangup")
        if code == "520":  # Invalid command syntax (a usage text follows): ctid's script is wrong
            raise AgiSessionEnded("usage_error")
        return AgiReply(int(code), line=line)
    raise AgiSessionEnded("bad_reply")


class LogBudget:
    """At most one log line per key in each `interval_s`, so a flood of refusals cannot fill the disk."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}

    def admit(self, key: str, now: float) -> int | None:
        """Note one event; the number of events the line stands for when one may be logged now, else None."""
        count = self._pending.get(key, 0) + 1
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._pending[key] = count
            return None
        self._last[key] = now
        self._pending[key] = 0
        return count


@dataclass(slots=True)
class AgiSession:
    """One FastAGI conversation: the agi_* environment, then commands with their parsed replies."""

    env: Mapping[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    limits: AgiLimits = field(default_factory=AgiLimits)
    commands: int = 0

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def script(self) -> str:
        return script_name(self.env)

    async def command(self, line: str) -> AgiReply:
        """Send one command and read its reply within idle_timeout_s; AgiSessionEnded when it cannot go on."""
        line = line.replace("\r", " ").replace("\n", " ")
        self.commands += 1
        try:
            async with asyncio.timeout(self.limits.idle_timeout_s):
                self.writer.write(line.encode("utf-8") + b"\n")
                await self.writer.drain()
                raw = await self.reader.readuntil(b"\n")
        except TimeoutError:
            raise AgiSessionEnded("timeout", waiting_for="reply") from None
        except asyncio.IncompleteReadError:
            raise AgiSessionEnded("eof") from None
        except asyncio.LimitOverrunError:
            raise AgiSessionEnded("bad_reply", detail="too_long") from None
        except ConnectionError:
            raise AgiSessionEnded("eof") from None
        reply = parse_reply(decode_line(raw).rstrip("\r\n"))
        if not reply.ok:
            log.warning(
                "agi_command_failed", uniqueid=self.uniqueid, command=line.split(" ", 2)[:2], code=reply.code
            )
        return reply

    async def get_variable(self, name: str) -> str:
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.ok and reply.result == "1" else ""

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {name} {agi_quote(value)}")


def agi_quote(value: str) -> str:
    """A value as one quoted AGI argument (never a second command line)."""
    value = value.replace("\r", " ").replace("\n", " ")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script_name(env: Mapping[str, str]) -> str:
    """The script a session asks for: `inbound` for agi://host:4573/inbound?x=1."""
    return env.get("agi_network_script", "").split("?", 1)[0].strip("/")


async def read_environment(reader: asyncio.StreamReader, limits: AgiLimits) -> dict[str, str]:
    """The agi_* lines up to the blank line, bounded in bytes, lines and time (AgiSessionEnded otherwise)."""
    env: dict[str, str] = {}
    received = lines = 0
    try:
        async with asyncio.timeout(limits.header_timeout_s):
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    received += len(exc.partial)
                    raise AgiSessionEnded(
                        "eof", header_bytes=received, uniqueid=env.get("agi_uniqueid", "")
                    ) from None
                except asyncio.LimitOverrunError:
                    raise AgiSessionEnded("header_too_large", uniqueid=env.get("agi_uniqueid", "")) from None
                received += len(raw)
                lines += 1
                if received > limits.header_max_bytes or lines > limits.header_max_lines:
                    raise AgiSessionEnded("header_too_large", uniqueid=env.get("agi_uniqueid", ""))
                line = decode_line(raw).rstrip("\r\n")
                if not line:
                    break
                parsed = parse_environment_line(line)
                if parsed is None:
                    raise AgiSessionEnded("bad_header", uniqueid=env.get("agi_uniqueid", ""))
                env[parsed[0]] = parsed[1]
    except TimeoutError:
        raise AgiSessionEnded(
            "timeout", waiting_for="header", header_bytes=received, uniqueid=env.get("agi_uniqueid", "")
        ) from None
    except ConnectionError:
        raise AgiSessionEnded("eof", header_bytes=received, uniqueid=env.get("agi_uniqueid", "")) from None
    if not script_name(env):
        raise AgiSessionEnded("bad_header", uniqueid=env.get("agi_uniqueid", ""))
    return env


Script = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer:
    """Accepts FastAGI connections and runs the script each one names, within `limits`."""

    def __init__(
        self,
        host: str,
        port: int,
        scripts: Mapping[str, Script],
        limits: AgiLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.scripts = scripts
        self.limits = limits or AgiLimits()
        self.max_sessions = self.limits.max_sessions or default_max_sessions()
        self.clock = clock
        self.refused: dict[str, int] = {}  # by reason, since start
        self._budget = LogBudget(self.limits.refusal_log_interval_s)
        self._sock: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and self.max_sessions > soft // 2:
            log.warning("agi_max_sessions_lowered", configured=self.max_sessions, file_limit=soft)
            self.max_sessions = max(1, soft // 2)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=512)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._acceptor = asyncio.get_running_loop().create_task(self._accept_loop(sock))
        log.info("agi_listening", host=self.host, port=self.port, max_sessions=self.max_sessions)

    async def close(self) -> None:
        tasks = [t for t in (self._acceptor, *self._sessions) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._acceptor = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _ACCEPT_EXHAUSTED:
                    self._refuse("file_limit", error=errno.errorcode.get(exc.errno or 0, ""))
                    await asyncio.sleep(self.limits.accept_retry_s)
                    continue
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                # anything else: keep listening, slowly (a dead acceptor would strand every later call)
                self._refuse("accept_error", error=errno.errorcode.get(exc.errno or 0, type(exc).__name__))
                await asyncio.sleep(self.limits.accept_retry_s)
                continue
            if len(self._sessions) >= self.max_sessions:
                conn.close()
                self._refuse("over_capacity", max_sessions=self.max_sessions)
                continue
            task = loop.create_task(self._serve(conn))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

    def _refuse(self, reason: str, **context: Any) -> None:
        """Count a refused connection; log it unless the same reason was logged moments ago."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        AGI_SESSIONS.labels("none", reason).inc()
        # anonymous noise (a port scan) has its own budget, so it cannot hide a real call's refusal
        key = reason if not context.get("uniqueid") else f"{reason}:call"
        count = self._budget.admit(key, self.clock())
        if count is not None:
            log.warning("agi_session_refused", reason=reason, count=count, **context)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.limits.header_max_bytes)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
        except OSError:
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await self._converse(reader, writer)
        finally:
            if transport.get_write_buffer_size():
                transport.abort()  # a peer that does not read must not hold the descriptor
            else:
                transport.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            env = await read_environment(reader, self.limits)
        except AgiSessionEnded as refused:
            self._refuse(refused.reason, **refused.context)
            return
        name = script_name(env)
        script = self.scripts.get(name)
        if script is None:
            self._refuse("unknown_script", uniqueid=env.get("agi_uniqueid", ""))
            return
        session = AgiSession(env, reader, writer, self.limits)
        bound = log.bind(uniqueid=session.uniqueid, script=name)
        started = self.clock()
        reason = "done"
        context: dict[str, Any] = {}
        try:
            await script(session)
        except AgiSessionEnded as ended:
            reason, context = ended.reason, ended.context
        except asyncio.CancelledError:
            reason = "shutdown"
            raise
        except Exception as exc:  # one call's failure never takes the server down
            reason = "error"
            bound.exception("agi_script_failed", error=type(exc).__name__)
        finally:
            AGI_SESSIONS.labels(name, "ok" if reason == "done" else reason).inc()
            level = (
                "debug"
                if reason == "done"
                else "info"
                if reason in ("hangup", "eof", "shutdown")
                else "warning"
            )
            getattr(bound, level)(
                "agi_session_ended",
                reason=reason,
                commands=session.commands,
                duration_s=round(self.clock() - started, 3),
                **context,
            )
