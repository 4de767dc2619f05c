"""pbxsim's TCP front: an AMI server for any number of sessions and a FastAGI client, around one World."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from pbxsim.actions import canonical
from pbxsim.agi import AgiSession
from pbxsim.world import ChannelInfo, World

BANNER = b"Asterisk Call Manager/13.0.0\r\n"


def _event_tv(when: float) -> str:
    moment = datetime.fromtimestamp(when, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class AmiClient:
    """One AMI connection: login state, event filter, and where to write."""

    _ids = itertools.count(1)

    def __init__(self, writer: asyncio.StreamWriter, local_port: int) -> None:
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/127.0.0.1/{local_port}"
        self.session_id = f"0x7f7a{next(self._ids):08x}"
        self.logged_in = False
        self.username = ""
        self.classes: frozenset[str] | None = frozenset()  # None: all events; empty: none
        self.session_tv = ""

    def wants(self, msg: AmiMessage) -> bool:
        if not self.logged_in or (self.classes is not None and not self.classes):
            return False
        if self.classes is None:
            return True
        privilege = {c.strip().lower() for c in (msg.get("Privilege") or "").split(",")} - {"all"}
        return bool(privilege & self.classes)

    def send(self, msg: AmiMessage) -> None:
        if not self.writer.is_closing():
            self.writer.write(msg.to_bytes())


def _event_classes(value: str | None) -> frozenset[str] | None:
    text = (value or "on").strip().lower()
    if text in ("on", "yes", "true", "1", "all"):
        return None
    if text in ("off", "no", "false", "0", ""):
        return frozenset()
    return frozenset(c.strip() for c in text.split(",") if c.strip())


class PbxSimServer:
    """Serves `world` over AMI and runs its FastAGI steps against ctid's FastAGI server.

    Time: with `speed` (virtual seconds per real second) a clock task advances the world on its own;
    with `speed=None` nothing moves until `advance()` / `run_until()` / `settle()` is awaited. Either
    way virtual time stands still while a FastAGI session is open (at most `agi_timeout` real seconds).
    """

    def __init__(
        self,
        world: World,
        *,
        host: str = "127.0.0.1",
        port: int = 5038,
        username: str = "ctid",
        secret: str = "ctid",
        agi_host: str = "127.0.0.1",
        agi_port: int = 4573,
        speed: float | None = None,
        agi_timeout: float = 10.0,
        auth_failure_delay: float = 0.0,
    ) -> None:
        self.world = world
        self.host = host
        self._port = port
        self.username = username
        self.secret = secret
        self.agi_host = agi_host
        self.agi_port = agi_port
        self.speed = speed
        self.agi_timeout = agi_timeout
        self.auth_failure_delay = auth_failure_delay
        self.clients: list[AmiClient] = []
        # called with each batch of events; may act on the world and return the events that caused
        self.observers: list[Callable[[list[AmiMessage]], list[AmiMessage]]] = []
        self._server: asyncio.Server | None = None
        self._clock: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._agi_changed = asyncio.Event()
        self._agi_started: dict[AgiSession, float] = {}

    # ---- lifecycle --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The AMI port actually bound (useful with port=0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        if self.speed is not None:
            self._clock = asyncio.create_task(self._run_clock())

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        self.drop_connections()
        if self._server is not None:
            self._server.close()
        if self._serving:
            await asyncio.wait(list(self._serving), timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> PbxSimServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def drop_connections(self) -> int:
        """Cut every AMI connection at once, as a crashing Asterisk would; returns how many there were."""
        clients, self.clients = self.clients, []
        for client in clients:
            client.writer.transport.abort()
        return len(clients)

    def channels(self) -> list[ChannelInfo]:
        """pbxsim's own view of the live channels."""
        return self.world.channel_list()

    # ---- time -------------------------------------------------------------------------------------
    async def advance(self, seconds: float) -> None:
        await self.run_until(self.world.now + seconds)

    async def run_until(self, when: float) -> None:
        await self._pump(when)

    async def settle(self) -> None:
        """Process everything due at the current virtual instant (including FastAGI sessions)."""
        await self._pump(self.world.now)

    async def call_in(
        self, endpoint: str, exten: str, *, cid_num: str | None = None, cid_name: str | None = None
    ) -> str:
        """A SIP endpoint calls `exten` (a customer's phone or a trunk); returns the new channel's name."""
        ch = self.world.sip_call(endpoint, exten, cid_num=cid_num, cid_name=cid_name)
        self._flush()
        await self.settle()
        return ch.name

    async def phone_action(self, action: str, **headers: str) -> AmiMessage:
        """What a phone's feature code or SIP REFER does (e.g. BlindTransfer), outside any AMI session."""
        msg = AmiMessage([("Action", action), ("ActionID", "phone"), *headers.items()])
        result = self.world.handle_action(msg)
        self._flush(result.events)
        await self.settle()
        return result.replies[0]

    async def _run_clock(self) -> None:
        assert self.speed is not None
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            nxt = self.world.next_timer_at()
            gap = 0.05 if nxt is None else (nxt - self.world.now) / self.speed
            await asyncio.sleep(min(0.05, max(0.0, gap)))
            now = loop.time()
            await self._pump(self.world.now + (now - last) * self.speed)
            last = loop.time()

    async def _pump(self, target: float) -> None:
        async with self._lock:
            while True:
                self._flush(self.world.advance(target))
                self._start_agi()
                if not self.world.frozen:
                    return
                await self._wait_agi()

    async def _wait_agi(self) -> None:
        loop = asyncio.get_running_loop()
        self._agi_changed.clear()
        if not self.world.frozen:
            return
        open_since = [t for s, t in self._agi_started.items() if s.blocking and not s.closed]
        deadline = min(open_since, default=loop.time()) + self.agi_timeout
        try:
            await asyncio.wait_for(self._agi_changed.wait(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            for session in self.world.agi_open:
                if loop.time() - self._agi_started.get(session, 0.0) >= self.agi_timeout:
                    session.blocking = False

    # ---- events -----------------------------------------------------------------------------------
    def _flush(self, events: list[AmiMessage] | None = None) -> None:
        batch = (events or []) + self.world.take_events()
        while batch:
            for msg in batch:
                for client in list(self.clients):
                    if client.wants(msg):
                        client.send(msg)
            batch = [caused for observer in self.observers for caused in observer(batch)]

    def send_raw(self, data: bytes) -> int:
        """Write pre-serialized AMI bytes to every logged-in client (benchmarks); returns how many."""
        clients = [c for c in self.clients if c.logged_in and not c.writer.is_closing()]
        for client in clients:
            client.writer.write(data)
        return len(clients)

    def _security(self, name: str, client: AmiClient, fields: list[tuple[str, str]]) -> None:
        self.world.emit(name, fields, "security,all")
        self._flush()

    # ---- FastAGI ----------------------------------------------------------------------------------
    def _start_agi(self) -> None:
        loop = asyncio.get_running_loop()
        for session in self.world.take_agi_requests():
            self._agi_started[session] = loop.time()
            task = asyncio.create_task(self._run_agi(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_agi(self, session: AgiSession) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.agi_host, self.agi_port), 5.0
            )
        except (OSError, TimeoutError):
            session.close("FAILURE")
            self._agi_finished(session)
            return
        try:
            writer.write(session.environment_bytes())
            await writer.drain()
            while not session.closed:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    continue
                reply = session.command(line)
                self._flush()
                writer.write((reply + "\n").encode("utf-8"))
                if session.hangup_notice:
                    session.hangup_notice = False
                    writer.write(b"HANGUP\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            session.close("SUCCESS")
            self._agi_finished(session)

    def _agi_finished(self, session: AgiSession) -> None:
        self._agi_started.pop(session, None)
        self._flush()
        self._agi_changed.set()

    # ---- AMI sessions -----------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        client = AmiClient(writer, self.port)
        self.clients.append(client)
        writer.write(BANNER)
        parser = AmiParser(expect_banner=False)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for msg in parser.feed(data):
                    if not await self._handle(client, msg):
                        return
        except (ConnectionError, OSError):
            pass
        finally:
            if client in self.clients:
                self.clients.remove(client)
            if not writer.is_closing():
                writer.close()

    async def _handle(self, client: AmiClient, msg: AmiMessage) -> bool:
        """Answer one action; False when the session ends."""
        msg = canonical(msg)
        action = (msg.get("Action") or "").strip()
        name = action.lower()
        if not action:
            client.send(_reply(msg, "Error", "Missing action in request"))
            return True
        if name == "login":
            return await self._login(client, msg)
        if not client.logged_in:
            client.send(_reply(msg, "Error", "Permission denied"))
            return True
        if name == "logoff":
            client.send(_reply(msg, "Goodbye", "Thanks for all the fish."))
            await client.writer.drain()
            client.writer.close()
            return False
        if name == "events":
            client.classes = _event_classes(msg.get("EventMask"))
            state = "Off" if client.classes is not None and not client.classes else "On"
            fields = [("Response", "Success")]
            if msg.action_id is not None:
                fields.append(("ActionID", msg.action_id))
            client.send(AmiMessage([*fields, ("Events", state)]))
            return True
        result = self.world.handle_action(msg)
        for reply in result.replies:
            client.send(reply)
        self._flush(result.events)
        if result.replies and result.replies[0].get("Message", "").startswith("Invalid/unknown command"):
            self._security(
                "RequestBadFormat",
                client,
                [
                    ("EventTV", _event_tv(self.world.now)),
                    ("Severity", "Error"),
                    ("Service", "AMI"),
                    ("EventVersion", "1"),
                    ("SessionID", client.session_id),
                    ("LocalAddress", client.local),
                    ("RemoteAddress", client.remote),
                    ("RequestType", f"Action: {action}"),
                    ("SessionTV", client.session_tv),
                    ("AccountID", client.username),
                ],
            )
        # run what the action made due now; when a pump is already running (it waits for a FastAGI
        # session, which may itself be waiting for this client's next action) it will get to it
        if not self._lock.locked():
            await self._pump(self.world.now)
        return True

    async def _login(self, client: AmiClient, msg: AmiMessage) -> bool:
        username = msg.get("Username") or ""
        if username != self.username or (msg.get("Secret") or "") != self.secret:
            if self.auth_failure_delay:
                await asyncio.sleep(self.auth_failure_delay)
            self._security(
                "InvalidPassword",
                client,
                [
                    ("EventTV", _event_tv(self.world.now)),
                    ("Severity", "Error"),
                    ("Service", "AMI"),
                    ("EventVersion", "2"),
                    ("AccountID", username),
                    ("SessionID", client.session_id),
                    ("LocalAddress", client.local),
                    ("RemoteAddress", client.remote),
                    ("SessionTV", "1970-01-01T00:00:00.000+0000"),
                ],
            )
            client.send(_reply(msg, "Error", "Authentication failed"))
            with contextlib.suppress(ConnectionError, OSError):
                await client.writer.drain()
            client.writer.close()
            return False
        client.logged_in = True
        client.username = username
        client.classes = _event_classes(msg.get("Events"))
        client.session_tv = _event_tv(self.world.now)
        client.send(_reply(msg, "Success", "Authentication accepted"))
        booted = AmiMessage(
            [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", str(int(self.world.now - self.world.started))),
                ("LastReload", str(int(self.world.now - self.world.started))),
                ("Status", "Fully Booted"),
            ]
        )
        if client.wants(booted):
            client.send(booted)
        self._security(
            "SuccessfulAuth",
            client,
            [
                ("EventTV", client.session_tv),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", username),
                ("SessionID", client.session_id),
                ("LocalAddress", client.local),
                ("RemoteAddress", client.remote),
                ("UsingPassword", "0"),
                ("SessionTV", client.session_tv),
            ],
        )
        return True


def _reply(msg: AmiMessage, status: str, message: str) -> AmiMessage:
    fields = [("Response", status)]
    if msg.action_id is not None:
        fields.append(("ActionID", msg.action_id))
    fields.append(("Message", message))
    return AmiMessage(fields)
