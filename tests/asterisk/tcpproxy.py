"""A TCP proxy between ctid and Asterisk's AMI port that a test can take down (a network fault on demand) or
slow at a chosen request (to open the window between two resync lists wide enough to act in).

It runs its own event loop in a thread, so it outlives the per-test event loops of pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port`.

    `outage()` cuts every link and refuses new ones; `freeze()` keeps every link up but forwards nothing (a
    hung Asterisk, or a network that drops packets without a reset); `hold_request(marker)` holds back what
    ctid sends from a given request on."""

    def __init__(self, upstream_port: int, port: int) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ami-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._gate: Gate | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """While the block runs: every open link is reset and connecting is refused; then it listens again."""
        self._call(self._shut())
        try:
            yield
        finally:
            self._call(self._listen())

    @contextlib.contextmanager
    def freeze(self) -> Iterator[None]:
        """While the block runs, links and new connections stay open but no byte is forwarded either way."""
        self._loop.call_soon_threadsafe(self._flowing.clear)
        try:
            yield
        finally:
            self._loop.call_soon_threadsafe(self._flowing.set)

    @contextlib.contextmanager
    def hold_request(self, marker: bytes) -> Iterator[Gate]:
        """The first time ctid sends `marker` (e.g. `Action: Status`), hold that request and all it sends
        after it, until the block ends; Asterisk's events keep flowing to ctid meanwhile."""
        gate = Gate(marker, asyncio.Event())
        self._gate = gate
        try:
            yield gate
        finally:
            self._gate = None
            self._loop.call_soon_threadsafe(gate.release.set)

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.transport.abort()
            return
        self._links.update((client_w, upstream_w))
        await asyncio.gather(self._pipe(client_r, upstream_w, gated=True), self._pipe(upstream_r, client_w))
        self._links.difference_update((client_w, upstream_w))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool = False
    ) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                gate = self._gate if gated else None
                at = data.find(gate.marker) if gate is not None and not gate.held.is_set() else -1
                if gate is not None and at >= 0:
                    writer.write(data[:at])
                    gate.held.set()
                    await gate.release.wait()
                    data = data[at:]
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            writer.transport.abort()
        else:
            writer.close()  # end of stream one way ends the link both ways, as AMI sessions do


@dataclass
class Gate:
    """A request held back by `TcpProxy.hold_request`: `held` is set once it is being held."""

    marker: bytes
    release: asyncio.Event
    held: threading.Event = field(default_factory=threading.Event)
