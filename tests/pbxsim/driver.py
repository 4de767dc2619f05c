"""Test drivers for pbxsim over real TCP: an AMI client that steps virtual time, and a FastAGI peer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from pbxsim import PbxSimServer

Predicate = Callable[[AmiMessage], bool]


class ScenarioAmi(Protocol):
    """What a scenario script needs of its AMI client: pbxsim's (virtual time) or a real Asterisk's."""

    async def action(self, name: str, **headers: str) -> AmiMessage: ...

    async def wait(self, predicate: Predicate, after: int = 0, within: float = 120.0) -> AmiMessage: ...

    def mark(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


REAL_TIMEOUT = 5.0


def event(name: str, **fields: str) -> Predicate:
    """Matches an event by name and exact header values (a trailing * matches a prefix)."""

    def match(m: AmiMessage) -> bool:
        if not m.is_event or m.name != name:
            return False
        for key, value in fields.items():
            have = m.get(key) or ""
            if value.endswith("*"):
                if not have.startswith(value[:-1]):
                    return False
            elif have != value:
                return False
        return True

    return match


class AmiTestClient:
    """Speaks AMI to a PbxSimServer running with speed=None; waiting for an event advances virtual time."""

    def __init__(self, server: PbxSimServer) -> None:
        self.server = server
        self.messages: list[AmiMessage] = []
        self.raw = b""
        self.banner = ""
        self.n = 0
        self._parser = AmiParser(expect_banner=True)
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._syncs: set[str] = set()
        self._sync_n = 0

    async def connect(self, username: str = "ctid", secret: str = "ctid", events: str = "on") -> AmiMessage:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        self._task = asyncio.create_task(self._read())
        return await self.action("Login", Username=username, Secret=secret, Events=events)

    async def _read(self) -> None:
        while True:
            data = await self.reader.read(65536)
            if not data:
                self._arrived.set()
                return
            self.raw += data
            for msg in self._parser.feed(data):
                if msg.action_id in self._syncs:
                    self._syncs.discard(msg.action_id or "")
                else:
                    self.messages.append(msg)
            if self._parser.banner:
                self.banner = self._parser.banner
            self._arrived.set()

    @property
    def closed(self) -> bool:
        return self._task is not None and self._task.done()

    def send(self, name: str, **headers: str | Sequence[str]) -> str:
        self.n += 1
        aid = f"{name.lower()}-{self.n}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        for key, value in headers.items():
            values = [value] if isinstance(value, str) else list(value)
            lines.extend(f"{key}: {v}" for v in values)
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        return aid

    async def _until(self, predicate: Callable[[], bool]) -> None:
        async def loop() -> None:
            while not predicate():
                self._arrived.clear()
                if predicate() or self.closed:
                    return
                await self._arrived.wait()

        await asyncio.wait_for(loop(), REAL_TIMEOUT)

    async def action(self, name: str, **headers: str | Sequence[str]) -> AmiMessage:
        aid = self.send(name, **headers)
        return await self.response(aid)

    async def response(self, aid: str) -> AmiMessage:
        def found() -> AmiMessage | None:
            return next((m for m in self.messages if m.is_response and m.action_id == aid), None)

        await self._until(lambda: found() is not None or self.closed)
        msg = found()
        assert msg is not None, f"no response to {aid}"
        return msg

    async def action_list(self, name: str, **headers: str) -> list[AmiMessage]:
        """A list action: the response, then every message with its ActionID up to the Complete event."""
        aid = self.send(name, **headers)

        def done() -> bool:
            return any(
                m.action_id == aid and (m.get("EventList") == "Complete" or m.get("Response") == "Error")
                for m in self.messages
            )

        await self._until(done)
        return [m for m in self.messages if m.action_id == aid]

    async def sync(self) -> None:
        """Everything the server wrote so far has been read (a Ping answered after it)."""
        self._sync_n += 1
        aid = f"sync-{self._sync_n}"
        self._syncs.add(aid)
        self.writer.write(f"Action: Ping\r\nActionID: {aid}\r\n\r\n".encode())
        await self._until(lambda: aid not in self._syncs or self.closed)

    def mark(self) -> int:
        return len(self.messages)

    async def wait(self, predicate: Predicate, after: int = 0, within: float = 120.0) -> AmiMessage:
        """The first message matching `predicate`, stepping virtual time (at most `within` seconds)."""
        world = self.server.world
        deadline = world.now + within
        await self.sync()
        while True:
            for msg in self.messages[after:]:
                if predicate(msg):
                    return msg
            nxt = world.next_timer_at()
            if nxt is None or nxt > deadline:
                raise AssertionError("the awaited event did not come")
            await self.server.run_until(nxt)
            await self.sync()

    async def sleep(self, seconds: float) -> None:
        await self.server.advance(seconds)
        await self.sync()

    def events(self) -> list[AmiMessage]:
        return [m for m in self.messages if m.is_event]

    async def close(self) -> None:
        await self.action("Logoff")
        self.writer.close()


@dataclass
class AgiPeer:
    """A FastAGI server that behaves like capture.py's: it runs a fixed script per agi_network_script."""

    scripts: Mapping[str, Sequence[str]]
    sessions: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]] = field(default_factory=list)
    port: int = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: list[tuple[str, str]] = []
        exchanges: list[tuple[str, str]] = []
        self.sessions.append((env, exchanges))
        while True:
            line = (await reader.readline()).decode("utf-8").rstrip("\n")
            if line == "":
                break
            key, _, value = line.partition(": ")
            env.append((key, value))
        script = dict(env).get("agi_network_script", "")
        for command in self.scripts.get(script, []):
            writer.write((command + "\n").encode("utf-8"))
            await writer.drain()
            reply = (await reader.readline()).decode("utf-8").rstrip("\n")
            exchanges.append((command, reply))
            if not reply or reply.startswith(("5", "HANGUP")):
                break
        writer.close()
