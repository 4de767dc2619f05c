"""More real-Asterisk captures (tests/pbxsim/captures, made with capture_more.py), replayed against pbxsim.

They cover what ctid does beyond the shared transcripts: a caller hanging up while an agent's phone rings,
Redirect of a connected caller (and of both legs), an agent whose phone is not registered, the survey.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pbxsim import PbxSimServer, World
from tests.pbxsim.driver import AgiPeer, AmiTestClient, ScenarioAmi, event
from tests.pbxsim.projection import describe_difference, project
from tests.pbxsim.test_fidelity import connect_agent, inbound_call
from tests.transcripts import load_transcript

CAPTURES = Path(__file__).resolve().parent / "captures"
AGI_SCRIPTS = {
    "inbound": ['SET VARIABLE CTID_QUEUE "sales"'],
    "survey": ["GET VARIABLE CTID_QUEUE", 'SET VARIABLE CTID_SURVEY_SCORE "5"'],
}


@pytest.fixture
async def ami() -> AsyncIterator[AmiTestClient]:
    agi = AgiPeer(AGI_SCRIPTS)
    await agi.start()
    server = PbxSimServer(World(seed=2), port=0, agi_port=agi.port)
    await server.start()
    client = AmiTestClient(server)
    await client.connect()
    yield client
    await server.stop()
    await agi.stop()


async def abandon_while_ringing(ami: ScenarioAmi) -> None:
    """The customer (patience 4 s) hangs up while agent 9001's phone rings: DialEnd CANCEL."""
    chan, uid = await inbound_call(ami, "13800001212", "周杰", 4)
    await connect_agent(ami, chan, "Local/9001@sim-phones")
    await ami.wait(event("Hangup", Uniqueid=uid), within=15)
    await ami.sleep(0.5)


async def redirect_back_to_queue(ami: ScenarioAmi) -> None:
    """ctid takes a connected caller back to ctid-wait (Redirect of the bridged caller); later hangs up."""
    chan, uid = await inbound_call(ami, "13800003434", "Zoë Ångström", 3600)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(1.0)
    mark = ami.mark()
    await ami.action("Redirect", Channel=chan, Context="ctid-wait", Exten="s", Priority="1")
    await ami.wait(event("MusicOnHoldStart", Uniqueid=uid), after=mark)
    await ami.sleep(1.0)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def dual_redirect(ami: ScenarioAmi) -> None:
    """Both legs of a connected call are redirected to ctid-wait (Redirect with ExtraChannel)."""
    chan, uid = await inbound_call(ami, "13800005656", "李娜", 3600)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    end = await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    agent = end["DestChannel"]
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(1.0)
    await ami.action(
        "Redirect",
        Channel=agent,
        ExtraChannel=chan,
        Context="ctid-wait",
        Exten="s",
        Priority="1",
        ExtraContext="ctid-wait",
        ExtraExten="s",
        ExtraPriority="1",
    )
    await ami.sleep(1.0)
    await ami.action("Hangup", Channel=agent, Cause="16")
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def agent_unavailable(ami: ScenarioAmi) -> None:
    """ctid dials an agent whose SIP phone is not registered (PJSIP/1002): CHANUNAVAIL, back to waiting."""
    chan, uid = await inbound_call(ami, "13800007878", "王芳", 3600)
    mark = ami.mark()
    await connect_agent(ami, chan, "PJSIP/1002")
    await ami.wait(event("Newexten", Uniqueid=uid, Context="ctid-wait"), after=mark)
    await ami.sleep(0.5)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


async def survey(ami: ScenarioAmi) -> None:
    """CTID_SURVEY=yes: when the agent hangs up, the caller goes to the survey over FastAGI."""
    chan, uid = await inbound_call(ami, "13800009090", "刘洋", 3600)
    await ami.action("Setvar", Channel=chan, Variable="CTID_SURVEY", Value="yes")
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    end = await ami.wait(event("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.wait(event("BridgeEnter", Uniqueid=uid))
    await ami.sleep(1.0)
    await ami.action("Hangup", Channel=end["DestChannel"], Cause="16")
    await ami.wait(event("Hangup", Uniqueid=uid))
    await ami.sleep(0.5)


PLAYS: dict[str, Callable[[ScenarioAmi], Awaitable[None]]] = {
    "abandon-while-ringing": abandon_while_ringing,
    "redirect-back-to-queue": redirect_back_to_queue,
    "dual-redirect": dual_redirect,
    "agent-unavailable": agent_unavailable,
    "survey": survey,
}


@pytest.mark.parametrize("name", sorted(PLAYS))
async def test_capture_gives_every_call_event(ami: AmiTestClient, name: str) -> None:
    await PLAYS[name](ami)
    await ami.close()
    real = project(load_transcript(name, CAPTURES).sessions[0].messages(), strict=True)
    ours = project(ami.messages, strict=True)
    assert ours == real, "\n" + describe_difference(real, ours)
