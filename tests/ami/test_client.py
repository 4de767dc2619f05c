"""AmiConnection over TCP against a scripted AMI peer: login, correlation, lists, timeouts, reconnects."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from ctid.ami import events as ev
from ctid.ami.client import AmiConnection, ResyncSnapshot
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.errors import AmiActionError, AmiTimeout

Handler = Callable[[AmiMessage, asyncio.StreamWriter], Awaitable[None]]


def send(writer: asyncio.StreamWriter, *pairs: tuple[str, str]) -> None:
    writer.write(AmiMessage(pairs).to_bytes())


class ScriptedAmi:
    """An AMI peer: banner, login, empty resync lists, and a per-test hook for other actions."""

    def __init__(self, on_action: Handler | None = None, secret: str = "s3cret") -> None:
        self.on_action = on_action
        self.secret = secret
        self.sessions = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.actions: list[str] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/13.0.0\r\n")
        parser = AmiParser(expect_banner=False)
        while data := await reader.read(4096):
            for msg in parser.feed(data):
                await self._answer(msg, writer)

    async def _answer(self, msg: AmiMessage, writer: asyncio.StreamWriter) -> None:
        aid = msg.get("ActionID", "")
        assert aid is not None
        self.actions.append(msg.name)
        if msg.name == "Login":
            if msg.get("Secret") != self.secret:
                send(writer, ("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed"))
                return
            send(writer, ("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted"))
            send(writer, ("Event", "FullyBooted"), ("Status", "Fully Booted"))
        elif msg.name in ("CoreShowChannels", "Status", "DeviceStateList"):
            send(writer, ("Response", "Success"), ("ActionID", aid), ("EventList", "start"), ("Message", "x"))
            if msg.name == "DeviceStateList":
                send(writer, ("Event", "DeviceStateChange"), ("ActionID", aid), ("Device", "PJSIP/1001"))
            done = {"CoreShowChannels": "CoreShowChannelsComplete", "Status": "StatusComplete"}
            send(writer, ("Event", done.get(msg.name, "DeviceStateListComplete")), ("ActionID", aid))
            writer.write(b"")
        elif msg.name == "ExtensionStateList":  # a server with no hints answers an error, not a list
            send(writer, ("Response", "Error"), ("ActionID", aid), ("Message", "No extension states"))
        elif msg.name == "Ping":
            send(writer, ("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"), ("Timestamp", "1.5"))
        elif msg.name == "Logoff":
            send(writer, ("Response", "Goodbye"), ("ActionID", aid))
        elif self.on_action is not None:
            await self.on_action(msg, writer)
        else:
            send(writer, ("Response", "Error"), ("ActionID", aid), ("Message", "Invalid/unknown command"))


def connect(peer: ScriptedAmi, **kwargs: object) -> AmiConnection:
    options: dict[str, object] = {
        "name": "t",
        "host": "127.0.0.1",
        "port": peer.port,
        "username": "ctid",
        "secret": "s3cret",
        "action_timeout": 1.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "rng": random.Random(1),
    }
    options.update(kwargs)
    return AmiConnection(**options)  # type: ignore[arg-type]


async def test_login_resync_and_events_in_order() -> None:
    received: list[ev.AmiEvent] = []
    snapshots: list[ResyncSnapshot] = []
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, on_event=received.append, on_resync=snapshots.append)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    assert snapshots[0].server_time == 1.5  # Asterisk's clock, read by Ping before the lists
    assert peer.actions[:6] == [
        "Login",
        "Ping",
        "CoreShowChannels",
        "Status",
        "DeviceStateList",
        "ExtensionStateList",
    ]
    assert len(snapshots) == 1 and [d.device for d in snapshots[0].devices] == ["PJSIP/1001"]
    assert snapshots[0].extensions == []  # Response: Error is an empty list, not a failure
    writer = peer.writers[0]
    # a name split inside a character, across two TCP writes
    raw = AmiMessage(
        [("Event", "Newchannel"), ("Channel", "PJSIP/a-1"), ("Uniqueid", "1.1"), ("CallerIDName", "张伟")]
    ).to_bytes()
    cut = raw.index("张".encode()) + 2
    writer.write(raw[:cut])
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.write(raw[cut:])
    await asyncio.sleep(0.05)
    newchannels = [e for e in received if isinstance(e, ev.Newchannel)]
    assert [e.chan.caller_name for e in newchannels] == ["张伟"]
    assert conn.event_counts["Newchannel"] == 1
    await conn.close()
    await peer.close()


async def test_actions_are_matched_by_action_id_even_out_of_order() -> None:
    held: list[tuple[str, asyncio.StreamWriter]] = []

    async def on_action(msg: AmiMessage, writer: asyncio.StreamWriter) -> None:
        held.append((msg.get("ActionID") or "", writer))
        if len(held) == 2:  # answer the second first
            for aid, w in reversed(held):
                send(w, ("Response", "Success"), ("ActionID", aid), ("Value", aid))

    peer = ScriptedAmi(on_action)
    await peer.start()
    conn = connect(peer)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    first, second = await asyncio.gather(
        conn.action("Getvar", Variable="A"), conn.action("Getvar", Variable="B")
    )
    assert first.get("Value") == held[0][0] and second.get("Value") == held[1][0]
    with pytest.raises(AmiActionError):
        peer.on_action = None
        await conn.action("NoSuchAction")
    await conn.close()
    await peer.close()


async def test_an_unanswered_action_times_out() -> None:
    async def never(msg: AmiMessage, writer: asyncio.StreamWriter) -> None:
        return None

    peer = ScriptedAmi(never)
    await peer.start()
    conn = connect(peer)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    with pytest.raises(AmiTimeout):
        await conn.action("Getvar", timeout=0.1)
    await conn.close()
    await peer.close()


async def test_a_dropped_connection_reconnects_and_resyncs() -> None:
    snapshots: list[ResyncSnapshot] = []
    disconnects: list[int] = []
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, on_resync=snapshots.append, on_disconnect=lambda: disconnects.append(1))
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    peer.writers[0].transport.abort()  # the server side vanishes
    for _ in range(100):
        await asyncio.sleep(0.02)
        if len(snapshots) == 2:
            break
    assert len(snapshots) == 2 and peer.sessions == 2
    assert disconnects == [1] and conn.reconnects == 1 and conn.logged_in
    await conn.close()
    await peer.close()


async def test_a_wrong_secret_keeps_retrying_with_growing_backoff() -> None:
    peer = ScriptedAmi(secret="other")
    await peer.start()
    conn = connect(peer, reconnect_min=0.02, reconnect_max=0.08)
    conn.start()
    await asyncio.sleep(0.6)
    assert not conn.logged_in and peer.sessions >= 3
    await conn.close()
    await peer.close()


async def test_garbage_from_the_server_does_not_break_the_session() -> None:
    received: list[ev.AmiEvent] = []
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, on_event=received.append)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    writer = peer.writers[0]
    writer.write(b"\x00\xff\xfe garbage\r\n\r\nEvent: Newstate\r\nno colon line\r\n\r\n")
    writer.write(b"Event: Hangup\r\nChannel: PJSIP/x-1\r\nUniqueid: 2.2\r\nCause: 16\r\n\r\n")
    await asyncio.sleep(0.05)
    assert [e.name for e in received] == ["Newstate", "Hangup"]
    assert isinstance(received[1], ev.Hangup) and received[1].cause == 16
    assert isinstance(received[0], ev.UnknownEvent)  # a Newstate without a channel cannot be typed
    assert conn.logged_in
    await conn.close()
    await peer.close()
