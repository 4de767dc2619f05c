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
        self.muted: set[asyncio.StreamWriter] = set()  # sessions that went silent: no answers, no events
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
        if writer in self.muted:
            return
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


async def eventually(probe: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_a_server_gone_silent_is_not_live_then_dropped_and_reconnected() -> None:
    snapshots: list[ResyncSnapshot] = []
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, ping_interval=0.1, on_resync=snapshots.append)  # not live after 0.2 s of silence
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    await asyncio.sleep(0.35)  # a few pings answered: still live
    assert conn.live and peer.actions.count("Ping") >= 3
    peer.muted.add(peer.writers[0])  # the TCP session stays open, but nothing comes back any more
    silent_at = asyncio.get_running_loop().time()
    await eventually(lambda: not conn.live, "the silent session to count as not live", timeout=1.0)
    assert asyncio.get_running_loop().time() - silent_at <= 0.5
    await eventually(lambda: len(snapshots) == 2 and conn.live, "a new session, resynced", timeout=3.0)
    assert peer.sessions == 2 and conn.reconnects == 1
    await conn.close()
    await peer.close()


async def test_a_late_ping_answer_behind_a_backlog_keeps_the_session() -> None:
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, ping_interval=0.1, action_timeout=0.1, stale_after=1.0)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    writer = peer.writers[0]
    peer.muted.add(writer)  # pings go unanswered for a while, but events keep coming
    for _ in range(30):
        send(writer, ("Event", "Newexten"), ("Channel", "PJSIP/a-1"), ("Uniqueid", "1.1"))
        await asyncio.sleep(0.01)
    assert conn.live and peer.sessions == 1  # bytes flow: the pings are late, not lost
    await eventually(lambda: not conn.live, "pings unanswered for stale_after", timeout=2.0)
    await conn.close()
    await peer.close()


async def test_an_oversized_message_is_dropped_logged_with_its_size_and_the_next_event_arrives() -> None:
    from structlog.testing import capture_logs

    from ctid.metrics import AMI_MALFORMED

    received: list[ev.AmiEvent] = []
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, name="big", on_event=received.append, max_message_bytes=4096)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    before = AMI_MALFORMED.labels("big")._value.get()
    writer = peer.writers[0]
    with capture_logs() as logs:
        writer.write(b"Event: Newchannel\r\nSecret-ish: " + b"s" * 100_000)
        for _ in range(10):
            writer.write(b"s" * 10_000)
            await writer.drain()
            await asyncio.sleep(0.005)
            assert conn.protocol is not None and conn.protocol.parser.buffered <= 4096
        writer.write(b"\r\n\r\nEvent: Hangup\r\nChannel: PJSIP/x-1\r\nUniqueid: 2.2\r\nCause: 16\r\n\r\n")
        await eventually(lambda: any(e.name == "Hangup" for e in received), "the event after it")
    assert [e.name for e in received] == ["Hangup"] and conn.logged_in
    assert AMI_MALFORMED.labels("big")._value.get() == before + 1
    (entry,) = [e for e in logs if e["event"] == "ami_message_too_large"]
    assert entry["bytes"] == len("Event: Newchannel\r\nSecret-ish: ") + 200_000 and entry["limit"] == 4096
    assert "sss" not in repr(entry)
    await conn.close()
    await peer.close()


async def test_ten_thousand_invented_event_names_give_one_other_series_in_metrics() -> None:
    from prometheus_client import REGISTRY, generate_latest

    from ctid.ami.client import COUNTED_EVENTS, OTHER_EVENTS

    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, name="names")
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    writer = peer.writers[0]
    writer.write(b"".join(b"Event: Invented%d\r\nX: 1\r\n\r\n" % i for i in range(10_000)))
    send(writer, ("Event", "Hangup"), ("Channel", "PJSIP/x-1"), ("Uniqueid", "2.2"))
    await eventually(lambda: conn.event_counts.get("Hangup") == 1, "the last event")
    assert conn.event_counts[OTHER_EVENTS] == 10_000
    assert set(conn.event_counts) <= COUNTED_EVENTS | {OTHER_EVENTS}
    series = [
        line
        for line in generate_latest(REGISTRY).decode().splitlines()
        if line.startswith("ctid_ami_events_total{") and 'server="names"' in line
    ]
    assert len(series) == len(conn.event_counts) <= 5
    assert 'ctid_ami_events_total{event="other",server="names"} 10000.0' in series
    await conn.close()
    await peer.close()


async def test_bytes_that_never_make_a_message_do_not_keep_a_session_live() -> None:
    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, ping_interval=0.1, max_message_bytes=1000)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    writer = peer.writers[0]
    peer.muted.add(writer)
    writer.write(b"Event: Endless\r\nData: ")
    loop = asyncio.get_running_loop()
    start = loop.time()
    while conn.live and loop.time() - start < 2.0:
        writer.write(b"x" * 100)  # bytes keep coming, but no blank line ever ends the message
        await asyncio.sleep(0.01)
    assert not conn.live and loop.time() - start <= 1.0
    await conn.close()
    await peer.close()


async def test_a_failing_resync_handler_redoes_the_session_instead_of_ending_the_connection() -> None:
    snapshots: list[ResyncSnapshot] = []

    def on_resync(snapshot: ResyncSnapshot) -> None:
        snapshots.append(snapshot)
        if len(snapshots) == 1:
            raise RuntimeError("state model refused the snapshot")

    peer = ScriptedAmi()
    await peer.start()
    conn = connect(peer, on_resync=on_resync)
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 5)
    assert len(snapshots) == 2 and peer.sessions == 2 and conn.reconnects == 1 and conn.live
    await conn.close()
    await peer.close()
