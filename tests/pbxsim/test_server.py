"""The AMI server and FastAGI client over real TCP: login, event filters, errors, dropping sessions, time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pbxsim import PbxSimServer, World
from pbxsim.dialplan import REFERENCE_DIALPLAN, Dialplan
from tests.pbxsim.driver import AgiPeer, AmiTestClient, event

CALLER = {
    "Channel": "Local/p3600@sim-callers",
    "Context": "ctid-inbound",
    "Exten": "4000",
    "Priority": "1",
    "CallerID": '"张伟" <13800001111>',
    "Async": "true",
}


@pytest.fixture
async def agi() -> AsyncIterator[AgiPeer]:
    peer = AgiPeer({"inbound": ['SET VARIABLE CTID_QUEUE "sales"']})
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def server(agi: AgiPeer) -> AsyncIterator[PbxSimServer]:
    srv = PbxSimServer(World(seed=1), port=0, agi_port=agi.port)
    await srv.start()
    yield srv
    await srv.stop()


async def logged_in(server: PbxSimServer, events: str = "on") -> AmiTestClient:
    client = AmiTestClient(server)
    reply = await client.connect(events=events)
    assert reply["Response"] == "Success"
    return client


async def waiting_caller(client: AmiTestClient) -> str:
    await client.action("Originate", **CALLER)
    ev = await client.wait(event("Newexten", Context="ctid-wait"))
    return ev["Channel"]


async def test_banner_login_and_fully_booted(server: PbxSimServer) -> None:
    client = await logged_in(server)
    assert client.banner == "Asterisk Call Manager/13.0.0"
    assert [m.name for m in client.messages[:3]] == ["Success", "FullyBooted", "SuccessfulAuth"]
    assert client.messages[0].fields == (
        ("Response", "Success"),
        ("ActionID", "login-1"),
        ("Message", "Authentication accepted"),
    )


async def test_wrong_secret_is_rejected_and_the_connection_closed(server: PbxSimServer) -> None:
    watcher = await logged_in(server)
    intruder = AmiTestClient(server)
    reply = await intruder.connect(secret="nope")
    assert reply.fields == (
        ("Response", "Error"),
        ("ActionID", "login-1"),
        ("Message", "Authentication failed"),
    )
    await asyncio.wait_for(intruder._task, 2)  # type: ignore[arg-type]
    assert intruder.closed
    await watcher.sync()
    assert any(m.name == "InvalidPassword" for m in watcher.messages)


async def test_actions_before_login_are_refused(server: PbxSimServer) -> None:
    client = AmiTestClient(server)
    client.reader, client.writer = await asyncio.open_connection("127.0.0.1", server.port)
    client._task = asyncio.create_task(client._read())
    reply = await client.action("Ping")
    assert reply.fields == (("Response", "Error"), ("ActionID", "ping-1"), ("Message", "Permission denied"))


async def test_events_off_gives_responses_but_no_events(server: PbxSimServer) -> None:
    quiet = await logged_in(server, events="off")
    loud = await logged_in(server)
    await waiting_caller(loud)
    await quiet.sync()
    assert [m for m in quiet.messages if m.is_event] == []
    assert (await quiet.action("Ping"))["Ping"] == "Pong"


async def test_event_classes_filter(server: PbxSimServer) -> None:
    calls_only = await logged_in(server, events="call")
    loud = await logged_in(server)
    await waiting_caller(loud)
    await calls_only.sync()
    names = {m.name for m in calls_only.messages if m.is_event}
    assert {"Newchannel", "MusicOnHoldStart", "DialBegin"} <= names
    assert not names & {"Newexten", "VarSet", "AGIExecStart", "FullyBooted"}


async def test_unknown_action(server: PbxSimServer) -> None:
    client = await logged_in(server)
    reply = await client.action("NoSuchAction")
    assert reply.fields == (
        ("Response", "Error"),
        ("ActionID", "nosuchaction-2"),
        (
            "Message",
            "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available commands.",
        ),
    )
    await client.sync()
    bad = next(m for m in client.messages if m.name == "RequestBadFormat")
    assert bad["RequestType"] == "Action: NoSuchAction"


async def test_several_sessions_see_the_same_calls(server: PbxSimServer) -> None:
    a, b = await logged_in(server), await logged_in(server)
    chan = await waiting_caller(a)
    await b.sync()
    assert any(m.name == "MusicOnHoldStart" and m["Channel"] == chan for m in b.messages)


async def test_dropping_connections_keeps_the_calls(server: PbxSimServer) -> None:
    client = await logged_in(server)
    chan = await waiting_caller(client)
    assert server.drop_connections() == 1
    await asyncio.wait_for(client._task, 2)  # type: ignore[arg-type]
    assert client.closed and server.clients == []
    names = {c.name for c in server.channels()}
    assert chan in names and len(names) == 2
    again = await logged_in(server)
    listed = await again.action_list("CoreShowChannels")
    assert {m["Channel"] for m in listed if m.name == "CoreShowChannel"} == names
    assert listed[-1]["ListItems"] == "2"


async def test_channel_list_from_python(server: PbxSimServer) -> None:
    client = await logged_in(server)
    chan = await waiting_caller(client)
    (info,) = [c for c in server.channels() if c.name == chan]
    assert (info.context, info.application, info.caller_name, info.state) == (
        "ctid-wait",
        "MusicOnHold",
        "张伟",
        "Up",
    )
    assert dict(info.variables)["CTID_QUEUE"] == "sales"


async def test_setvar_getvar_status_and_hangup(server: PbxSimServer) -> None:
    client = await logged_in(server)
    chan = await waiting_caller(client)
    assert (await client.action("Setvar", Channel=chan, Variable="CTID_TIER", Value="B"))[
        "Message"
    ] == "Variable Set"
    got = await client.action("Getvar", Channel=chan, Variable="CTID_TIER")
    assert (got["Variable"], got["Value"]) == ("CTID_TIER", "B")
    missing = await client.action("Getvar", Channel="Local/nobody-00000000;1", Variable="X")
    assert (missing["Response"], missing["Message"]) == ("Error", "No such channel")
    status = await client.action_list("Status", Channel=chan, Variables="CTID_QUEUE,CTID_NOPE")
    (item,) = [m for m in status if m.name == "Status"]
    assert item.get_all("Variable") == ["CTID_QUEUE=sales", "CTID_NOPE=(null)"]
    assert item.fields[-1] == ("ActionID", status[0].action_id)
    assert status[-1].fields[-2:] == (("ListItems", "1"), ("Items", "1"))
    assert (await client.action("Hangup", Channel=chan, Cause="16"))["Message"] == "Channel Hungup"
    ev = await client.wait(event("Hangup", Channel=chan))
    assert (ev["Cause"], ev["Cause-txt"]) == ("16", "Normal Clearing")
    assert (await client.action("Hangup", Channel=chan))["Message"] == "No such channel"


async def test_redirect_with_extra_channel(server: PbxSimServer) -> None:
    client = await logged_in(server)
    first = await waiting_caller(client)
    await client.action("Originate", **{**CALLER, "CallerID": '"Zoë" <13900002222>'})
    second = (await client.wait(event("Newexten", Context="ctid-wait", CallerIDNum="13900002222")))["Channel"]
    mark = client.mark()
    reply = await client.action(
        "Redirect",
        Channel=first,
        ExtraChannel=second,
        Context="ctid-transfer",
        Exten="300",
        Priority="1",
        ExtraContext="ctid-transfer",
        ExtraExten="301",
        ExtraPriority="1",
    )
    assert reply["Message"] == "Dual Redirect successful"
    await client.wait(event("MusicOnHoldStart", Channel=second), after=mark)
    queues = {m["Channel"]: m["Value"] for m in client.messages[mark:] if m.name == "VarSet"}
    assert queues == {first: "300", second: "301"}


async def test_device_states_and_hints(server: PbxSimServer) -> None:
    client = await logged_in(server)
    await client.action("Setvar", Variable="DEVICE_STATE(Custom:agent-1001)", Value="INUSE")
    hint = await client.wait(event("ExtensionStatus", Exten="1001"))
    assert (hint["Status"], hint["StatusText"]) == ("1", "InUse")
    states = await client.action_list("DeviceStateList")
    assert ("Custom:agent-1001", "INUSE") in [
        (m["Device"], m["State"]) for m in states if m.name == "DeviceStateChange"
    ]
    exts = await client.action_list("ExtensionStateList")
    assert [m["Exten"] for m in exts if m.name == "ExtensionStatus"] == ["1001", "1002"]


async def test_extension_state_list_without_hints_is_an_error(agi: AgiPeer) -> None:
    text = REFERENCE_DIALPLAN.replace("exten => 1001,hint,Custom:agent-1001", "").replace(
        "exten => 1002,hint,Custom:agent-1002", ""
    )
    async with PbxSimServer(World(dialplan=Dialplan(text)), port=0, agi_port=agi.port) as srv:
        client = await logged_in(srv)
        reply = (await client.action_list("ExtensionStateList"))[0]
        assert reply.fields == (
            ("Response", "Error"),
            ("ActionID", "extensionstatelist-2"),
            ("Message", "No dialplan hints are available"),
        )


async def test_unreachable_fastagi_fails_and_the_dialplan_goes_on() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with PbxSimServer(World(), port=0, agi_port=port) as srv:
        client = await logged_in(srv)
        await waiting_caller(client)
        status = next(m for m in client.messages if m.name == "VarSet" and m["Variable"] == "AGISTATUS")
        assert status["Value"] == "FAILURE"


async def test_fastagi_commands_answer_as_asterisk_does() -> None:
    peer = AgiPeer(
        {
            "inbound": [
                "GET VARIABLE NOPE",
                "GET VARIABLE CALLERID(name)",
                "NOOP hello",
                "EXEC Set CTID_X=1",
                "CHANNEL STATUS",
                "HANGUP",
            ]
        }
    )
    await peer.start()
    async with PbxSimServer(World(), port=0, agi_port=peer.port) as srv:
        client = await logged_in(srv)
        await client.action("Originate", **CALLER)
        ev = await client.wait(lambda m: m.name == "Hangup" and m["Channel"].endswith(";1"))
        assert ev["Cause"] == "0"
    await peer.stop()
    (_, exchanges) = peer.sessions[0]
    assert exchanges == [
        ("GET VARIABLE NOPE", "200 result=0"),
        ("GET VARIABLE CALLERID(name)", "200 result=1 (张伟)"),
        ("NOOP hello", "200 result=0"),
        ("EXEC Set CTID_X=1", "200 result=0"),
        ("CHANNEL STATUS", "200 result=6"),
        ("HANGUP", "200 result=1"),
    ]
    statuses = [m["Value"] for m in client.messages if m.name == "VarSet" and m["Variable"] == "AGISTATUS"]
    assert statuses == ["HANGUP"]


async def test_unknown_fastagi_command_gets_510() -> None:
    peer = AgiPeer({"inbound": ["FLY ME TO THE MOON"]})
    await peer.start()
    async with PbxSimServer(World(), port=0, agi_port=peer.port) as srv:
        client = await logged_in(srv)
        await waiting_caller(client)
        end = next(m for m in client.messages if m.name == "AGIExecEnd")
        assert (end["ResultCode"], end["Result"]) == ("510", "Invalid or unknown command")
    await peer.stop()
    assert peer.sessions[0][1] == [("FLY ME TO THE MOON", "510 Invalid or unknown command")]


async def test_speed_factor_runs_virtual_time_on_its_own(agi: AgiPeer) -> None:
    async with PbxSimServer(World(), port=0, agi_port=agi.port, speed=100.0) as srv:
        client = AmiTestClient(srv)
        await client.connect()
        start = srv.world.now
        await client.action("Originate", **{**CALLER, "Channel": "Local/p5@sim-callers"})
        await client._until(lambda: any(m.name == "Hangup" for m in client.messages))
        hangup = next(m for m in client.messages if m.name == "Hangup")
        assert float(hangup["Timestamp"]) - start == pytest.approx(5.02, abs=0.2)


async def test_fastagi_script_can_use_ami_while_time_stands_still() -> None:
    """ctid's FastAGI handler may send AMI actions and wait for their answers before it ends the session."""
    ami_holder: list[AmiTestClient] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = {}
        while line := (await reader.readline()).decode().rstrip("\n"):
            key, _, value = line.partition(": ")
            env[key] = value
        side = ami_holder[0]
        for tier in ("A", "B"):
            reply = await side.action("Setvar", Channel=env["agi_channel"], Variable="CTID_TIER", Value=tier)
            assert reply["Response"] == "Success"
        writer.write(b'SET VARIABLE CTID_QUEUE "vip"\n')
        await writer.drain()
        await reader.readline()
        writer.close()

    agi = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = agi.sockets[0].getsockname()[1]
    async with PbxSimServer(World(), port=0, agi_port=port, agi_timeout=30.0) as srv:
        ami_holder.append(await logged_in(srv))
        client = await logged_in(srv)
        await asyncio.wait_for(waiting_caller(client), 5.0)
        sets = [(m["Variable"], m["Value"]) for m in client.messages if m.name == "VarSet"]
        assert [s for s in sets if s[0].startswith("CTID_")] == [
            ("CTID_TIER", "A"),
            ("CTID_TIER", "B"),
            ("CTID_QUEUE", "vip"),
        ]
        assert sets[-1] == ("AGISTATUS", "SUCCESS")
    agi.close()


async def test_header_names_are_case_insensitive(server: PbxSimServer) -> None:
    """As in Asterisk; the `Action` key stays capitalised (ctid.ami.parser starts messages only on it)."""
    client = await logged_in(server)
    chan = await waiting_caller(client)
    client.writer.write(
        f"Action: getvar\r\nactionid: g1\r\nchannel: {chan}\r\nVARIABLE: CTID_QUEUE\r\n\r\n".encode()
    )
    reply = await client.response("g1")
    assert (reply["Response"], reply["Value"]) == ("Success", "sales")
