"""Each captured scenario, replayed against pbxsim over TCP, gives the call events the real Asterisk gave.

The driver sends exactly the actions ../shared/asterisk/capture.py sent for the scenario (its sleeps become
virtual time), with a FastAGI peer that replies as capture.py's did. The comparison is the per-channel /
per-bridge projection of tests/pbxsim/projection.py (see there why not one global order); every kept event
must have the real one's header names and the compared values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from ctid.ami.message import AmiMessage
from pbxsim import PbxSimServer, World, reference_site
from pbxsim.site import Endpoint
from tests.pbxsim.driver import AgiPeer, AmiTestClient, ScenarioAmi, event
from tests.pbxsim.projection import describe_difference, project
from tests.transcripts import SCENARIOS, load_agi_transcript, load_transcript

AGI_INBOUND = [
    "GET VARIABLE CALLERID(num)",
    'SET VARIABLE CTID_CUSTOMER "c-1001"',
    'SET VARIABLE CTID_TIER "A"',
    'SET VARIABLE CTID_QUEUE "sales"',
    'VERBOSE "ctid: caller identified" 1',
]
AGI_OUTBOUND = ["GET VARIABLE AMDSTATUS", "GET VARIABLE AMDCAUSE", 'SET VARIABLE CTID_QUEUE "outbound-c1"']


@dataclass
class Rig:
    server: PbxSimServer
    agi: AgiPeer
    ami: AmiTestClient
    extra: list[AmiTestClient]

    async def client(self) -> AmiTestClient:
        c = AmiTestClient(self.server)
        self.extra.append(c)
        return c


def sip_endpoints() -> tuple[Endpoint, ...]:
    """The reference endpoints, with the customer's phone and agent 1001's phone registered (pyVoIP)."""
    out = []
    for e in reference_site():
        if e.name in ("customer", "1001"):
            e = Endpoint(e.name, e.callerid_num, e.callerid_name, e.context, True, e.answer_after)
        out.append(e)
    return tuple(out)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    agi = AgiPeer({"inbound": AGI_INBOUND, "outbound": AGI_OUTBOUND})
    await agi.start()
    callspec = getattr(request.node, "callspec", None)
    endpoints = (
        sip_endpoints() if callspec is not None and callspec.params.get("name") == "inbound-sip" else None
    )
    world = World(seed=1, endpoints=endpoints)
    server = PbxSimServer(world, port=0, agi_port=agi.port)
    await server.start()
    ami = AmiTestClient(server)
    await ami.connect()
    yield Rig(server, agi, ami, [])
    await server.stop()
    await agi.stop()


# ---- the scenarios, as capture.py plays them -------------------------------------------------------
async def inbound_call(ami: ScenarioAmi, number: str, name: str, patience: int) -> tuple[str, str]:
    mark = ami.mark()
    await ami.action(
        "Originate",
        Channel=f"Local/p{patience}@sim-callers",
        Context="ctid-inbound",
        Exten="4000",
        Priority="1",
        CallerID=f'"{name}" <{number}>',
        Async="true",
        Timeout="30000",
    )
    ev = await ami.wait(event("Newexten", Context="ctid-wait", CallerIDNum=number), after=mark)
    return ev["Channel"], ev["Uniqueid"]


async def connect_agent(ami: ScenarioAmi, chan: str, dial: str, ring_timeout: str = "15") -> None:
    await ami.action("Setvar", Channel=chan, Variable="CTID_AGENT_DIAL", Value=dial)
    await ami.action("Setvar", Channel=chan, Variable="CTID_RING_TIMEOUT", Value=ring_timeout)
    await ami.action("Redirect", Channel=chan, Context="ctid-connect", Exten="s", Priority="1")


async def sc_inbound_answered(rig: Rig) -> None:
    ami = rig.ami
    chan, uid = await inbound_call(ami, "13800001111", "张伟", 3600)
    await ami.sleep(1.0)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    de = await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(2.0)
    await ami.action("Hangup", Channel=de["DestChannel"], Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def sc_inbound_abandoned(rig: Rig) -> None:
    ami = rig.ami
    _, uid = await inbound_call(ami, "13900002222", "Zoë Ångström", 3)
    await ami.wait(event("Hangup", Uniqueid=uid), within=15)
    await ami.sleep(0.5)


async def sc_inbound_ring_no_answer(rig: Rig) -> None:
    ami = rig.ami
    chan, uid = await inbound_call(ami, "13700003333", "李娜", 3600)
    mark = ami.mark()
    await connect_agent(ami, chan, "Local/9002@sim-phones", ring_timeout="3")
    await ami.wait(event("DialEnd", Uniqueid=uid), after=mark)
    await ami.wait(
        event("Newexten", Uniqueid=uid, Context="ctid-wait", Application="MusicOnHold"), after=mark
    )
    await ami.sleep(0.5)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.sleep(1.5)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def sc_blind_transfer(rig: Rig) -> None:
    ami = rig.ami
    chan, uid = await inbound_call(ami, "13600004444", "王芳", 3600)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    de = await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(1.0)
    mark = ami.mark()
    await ami.action("BlindTransfer", Channel=de["DestChannel"], Context="ctid-transfer", Exten="200")
    await ami.wait(event("BlindTransfer"), after=mark)
    ev = await ami.wait(event("Newexten", Context="ctid-wait", Application="MusicOnHold"), after=mark)
    chan, uid = ev["Channel"], ev["Uniqueid"]
    await ami.sleep(0.5)
    await connect_agent(ami, chan, "Local/1003@sim-phones")
    await ami.wait(event("DialEnd", DialStatus="ANSWER", DestChannel="Local/1003*"))
    await ami.sleep(1.0)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def sc_attended_transfer(rig: Rig) -> None:
    ami = rig.ami
    chan, uid = await inbound_call(ami, "13500005555", "刘洋", 3600)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    de = await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    agent = de["DestChannel"]
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(1.0)
    await ami.action("Atxfer", Channel=agent, Context="sim-phones", Exten="1004")
    await ami.wait(event("Newchannel", Channel="Local/1004*"))
    await ami.wait(event("Newstate", Channel="Local/1004*", ChannelStateDesc="Up"))
    await ami.sleep(1.0)
    await ami.action("Hangup", Channel=agent, Cause="16")
    await ami.wait(event("AttendedTransfer"))
    await ami.sleep(1.5)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(1.0)


async def outbound(rig: Rig, channel: str, contact: str) -> str:
    ami = rig.ami
    return ami.send(
        "Originate",
        Channel=channel,
        Context="ctid-outbound",
        Exten="s",
        Priority="1",
        Async="true",
        Timeout="20000",
        CallerID='"Campaign c1" <4000>',
        Variable=["CTID_CAMPAIGN=c1", f"CTID_CONTACT={contact}"],
    )


async def sc_outbound_human(rig: Rig) -> None:
    ami = rig.ami
    aid = await outbound(rig, "Local/h5550001@sim-callees", "42")
    await ami.wait(lambda m: m.name == "OriginateResponse" and m.action_id == aid)
    ev = await ami.wait(event("Newexten", Context="ctid-wait"))
    chan, uid = ev["Channel"], ev["Uniqueid"]
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.sleep(1.5)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def sc_outbound_machine(rig: Rig) -> None:
    ami = rig.ami
    aid = await outbound(rig, "Local/m5550002@sim-callees", "43")
    await ami.wait(lambda m: m.name == "OriginateResponse" and m.action_id == aid)
    ev = await ami.wait(event("Newexten", Context="ctid-wait"))
    await ami.action("Hangup", Channel=ev["Channel"], Cause="16")
    await ami.wait(event("Hangup", Uniqueid=ev["Uniqueid"]))
    await ami.sleep(0.5)


async def sc_outbound_failed(rig: Rig) -> None:
    """Two originates at once: the per-channel projection does not depend on how Asterisk interleaved them."""
    ami = rig.ami
    aids = []
    for channel, contact in (("Local/b5550003@sim-callees", "44"), ("Local/q5550004@sim-callees", "45")):
        aids.append(
            ami.send(
                "Originate",
                Channel=channel,
                Context="ctid-outbound",
                Exten="s",
                Priority="1",
                Async="true",
                Timeout="5000",
                Variable=["CTID_CAMPAIGN=c1", f"CTID_CONTACT={contact}"],
            )
        )
    for aid in aids:
        await ami.wait(originate_response(aid))
    await ami.sleep(1.0)


def originate_response(aid: str) -> Callable[[AmiMessage], bool]:
    return lambda m: m.name == "OriginateResponse" and m.action_id == aid


async def sc_resync(rig: Rig) -> None:
    ami = rig.ami
    c1, _ = await inbound_call(ami, "13800006666", "陈静", 3600)
    c2, u2 = await inbound_call(ami, "13800007777", "Đặng Thị Hoa", 3600)
    await connect_agent(ami, c2, "Local/1001@sim-phones")
    await ami.wait(event("BridgeEnter", Uniqueid=u2))
    await ami.action("Setvar", Variable="DEVICE_STATE(Custom:agent-1001)", Value="INUSE")
    await ami.action("Setvar", Variable="DEVICE_STATE(Custom:agent-1002)", Value="NOT_INUSE")
    await ami.sleep(0.5)
    wrong = await rig.client()
    refused = await wrong.connect(secret="wrong")
    assert refused.fields == (
        ("Response", "Error"),
        ("ActionID", "login-1"),
        ("Message", "Authentication failed"),
    )
    await ami.sleep(0.3)
    second = await rig.client()
    await second.connect()
    await second.action_list("CoreShowChannels")
    await second.action_list("Status")
    await second.action_list("DeviceStateList")
    await second.action_list("ExtensionStateList")
    await second.action("Getvar", Channel=c1, Variable="CTID_QUEUE")
    await second.action("Ping")
    await second.action("NoSuchAction")
    await second.close()
    await ami.action("Hangup", Channel=c1, Cause="16")
    await ami.action("Hangup", Channel=c2, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=u2))
    await ami.sleep(0.5)


async def sc_inbound_sip(rig: Rig) -> None:
    ami = rig.ami
    mark = ami.mark()
    await rig.server.call_in("customer", "4000")
    ev = await ami.wait(event("Newexten", Context="ctid-wait"), after=mark)
    chan, uid = ev["Channel"], ev["Uniqueid"]
    await ami.sleep(1.0)
    await connect_agent(ami, chan, "PJSIP/1001")
    de = await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(2.0)
    await ami.action("Hangup", Channel=de["DestChannel"], Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(1.0)


PLAYS: dict[str, Callable[[Rig], Awaitable[None]]] = {
    "inbound-answered": sc_inbound_answered,
    "inbound-abandoned": sc_inbound_abandoned,
    "inbound-ring-no-answer": sc_inbound_ring_no_answer,
    "blind-transfer": sc_blind_transfer,
    "attended-transfer": sc_attended_transfer,
    "outbound-human": sc_outbound_human,
    "outbound-machine": sc_outbound_machine,
    "outbound-failed": sc_outbound_failed,
    "resync": sc_resync,
    "inbound-sip": sc_inbound_sip,
}


# ---- the comparisons -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_gives_the_real_call_events(rig: Rig, name: str) -> None:
    await PLAYS[name](rig)
    await rig.ami.close()
    real = project(load_transcript(name).sessions[0].messages())
    ours = project(rig.ami.messages)
    assert ours == real, "\n" + describe_difference(real, ours)


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_gives_every_call_event_with_its_values(rig: Rig, name: str) -> None:
    """Stricter: all call events (every VarSet, NewCallerid, AGIExecStart/End, DTMFEnd...) and the values
    of their snapshots, except times, SIP Call-IDs and RTP statistics."""
    await PLAYS[name](rig)
    await rig.ami.close()
    real = project(load_transcript(name).sessions[0].messages(), strict=True)
    ours = project(rig.ami.messages, strict=True)
    assert ours == real, "\n" + describe_difference(real, ours)


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_fastagi_conversation_matches(rig: Rig, name: str) -> None:
    await PLAYS[name](rig)
    real = load_agi_transcript(name).sessions
    assert len(rig.agi.sessions) == len(real)
    for (env, exchanges), expected in zip(rig.agi.sessions, real, strict=True):
        assert [k for k, _ in env] == [k for k, _ in expected.environment]
        varying = {"agi_channel", "agi_uniqueid", "agi_threadid"}
        assert [(k, v) for k, v in env if k not in varying] == [
            (k, v) for k, v in expected.environment if k not in varying
        ]
        assert exchanges == list(expected.exchanges)


def _fields_without(msg: AmiMessage, *keys: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in msg.fields if k not in keys]


async def test_resync_list_answers_match(rig: Rig) -> None:
    await sc_resync(rig)
    second = rig.extra[1]
    real = load_transcript("resync").sessions[1]
    ours_by_action = {
        a: [m for m in second.messages if m.action_id == a] for a in {m.action_id for m in second.messages}
    }
    real_msgs = real.messages()
    real_by_action = {a: [m for m in real_msgs if m.action_id == a] for a in {m.action_id for m in real_msgs}}
    ids = [
        "coreshowchannels-2",
        "status-3",
        "devicestatelist-4",
        "extensionstatelist-5",
        "getvar-6",
        "ping-7",
    ]
    ids.append("nosuchaction-8")
    for aid in ids:
        ours, theirs = ours_by_action[aid], real_by_action[aid]
        assert [m.name for m in ours] == [m.name for m in theirs], aid
        for a, b in zip(ours, theirs, strict=True):
            assert [k for k, _ in a.fields] == [k for k, _ in b.fields], (aid, a.name)
    assert ours_by_action["getvar-6"][0].fields == real_by_action["getvar-6"][0].fields
    assert ours_by_action["nosuchaction-8"][0].fields == real_by_action["nosuchaction-8"][0].fields
    for aid in ("devicestatelist-4", "extensionstatelist-5"):
        assert sorted(m.fields for m in ours_by_action[aid]) == sorted(m.fields for m in real_by_action[aid])

    def channel_rows(msgs: list[AmiMessage]) -> list[tuple[str, ...]]:
        keep = ("ChannelStateDesc", "Context", "Exten", "Priority", "Application", "ApplicationData", "Data")
        norm = project_names(msgs)
        return sorted(
            tuple([norm[m["Channel"]], *(m.get(k, "") for k in keep)]) for m in msgs if "Channel" in m
        )

    for aid in ("coreshowchannels-2", "status-3"):
        assert channel_rows(ours_by_action[aid]) == channel_rows(real_by_action[aid])

    # the security events: the wrong secret seen from the first session, the second session's own
    def names(msgs: list[AmiMessage], name: str) -> list[str]:
        return [k for k, _ in next(m for m in msgs if m.name == name).fields]

    first_real = load_transcript("resync").sessions[0].messages()
    assert names(rig.ami.messages, "InvalidPassword") == names(first_real, "InvalidPassword")
    for name in ("SuccessfulAuth", "RequestBadFormat", "FullyBooted"):
        assert names(second.messages, name) == names(real_msgs, name)


def project_names(msgs: list[AmiMessage]) -> dict[str, str]:
    """Channel name → name with its counter replaced, so two runs' lists compare."""
    out = {}
    for m in msgs:
        name = m.get("Channel")
        if name:
            device, _, rest = name.rpartition("-")
            out[name] = f"{device}-*{rest[8:]}"
    return out
