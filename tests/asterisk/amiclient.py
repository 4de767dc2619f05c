"""A small AMI client for the integration tests: it plays customers and the router against a real Asterisk.

Deliberately independent of ctid's own AMI code, so the tests do not share a bug with what they test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict[str, str]
Predicate = Callable[[Message], bool]
HeaderValue = str | int | list[str]


class AmiError(Exception):
    """Asterisk answered an action with `Response: Error`, or did not answer in time."""


@dataclass
class _Waiter:
    predicate: Predicate
    future: asyncio.Future[Message]


@dataclass
class TestAmiClient:
    """One AMI session: actions with ActionID correlation, and every message kept for `wait_for`."""

    host: str
    port: int
    username: str
    secret: str
    messages: list[Message] = field(default_factory=list)
    session_fd: int | None = None  # Asterisk's file descriptor for this session (`manager show connected`)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    _waiters: list[_Waiter] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    __test__ = False  # not a pytest test class

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        banner = await asyncio.wait_for(self._reader.readline(), 5)
        if not banner.startswith(b"Asterisk Call Manager"):
            raise AmiError(f"not an AMI banner: {banner!r}")
        self._task = asyncio.create_task(self._read_loop())
        await self.action("Login", Username=self.username, Secret=self.secret, Events="on")

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(AmiError, ConnectionError, TimeoutError):
                await self.action("Logoff", timeout=2)
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read_loop(self) -> None:
        assert self._reader is not None
        current: Message = {}
        while True:
            raw = await self._reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")  # a trunk's Latin-1 name too
            if line:
                key, _, value = line.partition(": ")
                current.setdefault(key, value)
                continue
            if not current:
                continue
            message, current = current, {}
            self.messages.append(message)
            for waiter in list(self._waiters):
                if not waiter.future.done() and waiter.predicate(message):
                    waiter.future.set_result(message)

    def send(self, action: str, charset: str = "utf-8", **headers: HeaderValue) -> str:
        """Send an action without waiting; returns its ActionID. A list value repeats the header; `charset`
        encodes the whole action (latin-1 plays a trunk that sends caller names so)."""
        assert self._writer is not None, "not connected"
        action_id = f"test-{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in headers.items():
            values = value if isinstance(value, list) else [str(value)]
            lines += [f"{key}: {v}" for v in values]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode(charset))
        return action_id

    async def action(
        self, action: str, timeout: float = 10.0, charset: str = "utf-8", **headers: HeaderValue
    ) -> Message:
        """Send an action and return its response; `Response: Error` raises AmiError."""
        action_id = self.send(action, charset, **headers)
        response = await self.wait_for(
            lambda m: m.get("ActionID") == action_id and "Response" in m, timeout=timeout, after=None
        )
        if response.get("Response") == "Error":
            raise AmiError(f"{action} {headers}: {response.get('Message', '')}")
        return response

    def mark(self) -> int:
        """A position in the message log; `wait_for(after=mark)` ignores what came before it."""
        return len(self.messages)

    async def wait_for(self, predicate: Predicate, timeout: float = 10.0, after: int | None = 0) -> Message:
        """The first message (from position `after`, or only new ones when None) that matches."""
        if after is not None:
            for message in self.messages[after:]:
                if predicate(message):
                    return message
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise AmiError(f"no matching AMI message within {timeout} s") from exc
        finally:
            self._waiters.remove(waiter)


def event(name: str, **fields: str) -> Predicate:
    """Matches an event by name and exact header values; a value ending in `*` matches a prefix."""

    def match(message: Message) -> bool:
        if message.get("Event") != name:
            return False
        for key, want in fields.items():
            got = message.get(key, "")
            if want.endswith("*") and got.startswith(want[:-1]):
                continue
            if got != want:
                return False
        return True

    return match
