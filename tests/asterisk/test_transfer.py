"""Transfers on a real Asterisk: a blind transfer to a queue, an attended transfer to another agent."""

from __future__ import annotations

import pytest

from tests.asterisk.amiclient import event
from tests.asterisk.harness import (
    AsteriskInstance,
    Contact,
    CtidHttp,
    Pbx,
    assert_matches_asterisk,
    assert_nothing_up,
    kinds,
    timeline_events,
)

pytestmark = pytest.mark.asterisk


async def test_blind_transfer_to_a_queue(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance) -> None:
    contact = await pbx.inbound_call("13600004444", "王芳")
    agent_channel = await pbx.connect(contact, "Local/1001@sim-phones")
    await http.wait_call(contact.linkedid, lambda c: c["state"] == "connected", "connected to 1001")

    mark = pbx.ami.mark()
    await pbx.ami.action("BlindTransfer", Channel=agent_channel, Context="ctid-transfer", Exten="200")
    transferred = await pbx.ami.wait_for(event("BlindTransfer"), after=mark)
    assert transferred["Result"] == "Success", transferred
    back = await pbx.ami.wait_for(
        event("Newexten", Context="ctid-wait", Application="MusicOnHold", Linkedid=contact.linkedid),
        after=mark,
    )
    requeued = Contact(back["Channel"], back["Uniqueid"], back["Linkedid"])

    waiting = await http.wait_call(
        contact.linkedid, lambda c: c["state"] == "waiting" and c["queue"] == "200", "waiting in queue 200"
    )
    assert waiting["contact_channel"] == requeued.channel
    assert (waiting["agent"], waiting["transfers"]) == ("", 1)
    await assert_matches_asterisk(http, asterisk)

    await pbx.connect(requeued, "Local/1003@sim-phones")
    connected = await http.wait_call(
        contact.linkedid, lambda c: c["state"] == "connected", "connected to 1003"
    )
    assert connected["agent"] == "Local/1003@sim-phones"
    assert connected["agents"] == ["Local/1001@sim-phones", "Local/1003@sim-phones"]
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(requeued.channel)
    ended = await http.wait_ended(contact.linkedid)
    (transfer,) = timeline_events(ended, "CallTransferred")
    assert (transfer["transfer"], transfer["from_agent"], transfer["to_agent"], transfer["to_queue"]) == (
        "blind",
        "Local/1001@sim-phones",
        "",
        "200",
    )
    waits = timeline_events(ended, "CallWaiting")
    assert [w["queue"] for w in waits] == ["default", "200"]
    assert not waits[1]["requeued"], "a transfer to a queue starts a new contact there"
    assert [e["agent"] for e in timeline_events(ended, "CallConnected")] == [
        "Local/1001@sim-phones",
        "Local/1003@sim-phones",
    ]
    assert (ended["transfers"], ended["disposition"], ended["ended_by"]) == (1, "answered", "caller")
    await assert_nothing_up(http, asterisk)


async def test_attended_transfer_to_an_agent(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance) -> None:
    contact = await pbx.inbound_call("13500005555", "刘洋")
    agent_channel = await pbx.connect(contact, "Local/1001@sim-phones")
    await http.wait_call(contact.linkedid, lambda c: c["state"] == "connected", "connected to 1001")

    mark = pbx.ami.mark()
    await pbx.ami.action("Atxfer", Channel=agent_channel, Context="sim-phones", Exten="1004")
    await pbx.ami.wait_for(
        lambda m: (
            m.get("Event") == "Newstate"
            and m.get("Channel", "").startswith("Local/1004@sim-phones")
            and m.get("ChannelStateDesc") == "Up"
        ),
        after=mark,
    )
    # the consultation is set up only once 1004's leg is in the consult bridge; a hang-up before that is
    # a plain hang-up (seen on a loaded CI machine), not the completion of a transfer
    await pbx.ami.wait_for(event("BridgeEnter", Channel="Local/1004@sim-phones*"), after=mark)
    held = await http.wait_call(
        contact.linkedid, lambda c: c["state"] == "held", "held during the consultation"
    )
    agents = {a["device"]: a for a in await http.agents()}
    assert (held["agent"], agents["Local/1001@sim-phones"]["status"]) == (
        "Local/1001@sim-phones",
        "on_call",
    ), (
        "while 1001 consults 1004, the caller is on 1001's hold: the call's agent stays 1001 and 1001 stays "
        "on_call (hold is part of the agent's handling time; the agent must not look free to routing)"
    )
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(agent_channel)  # 1001 hangs up: the transfer completes
    await pbx.ami.wait_for(event("AttendedTransfer"), after=mark)
    connected = await http.wait_call(
        contact.linkedid,
        lambda c: c["state"] == "connected" and c["agent"] == "Local/1004@sim-phones",
        "connected to 1004",
    )
    assert connected["agents"] == ["Local/1001@sim-phones", "Local/1004@sim-phones"]
    assert connected["transfers"] == 1
    agents = {a["device"]: a for a in await http.agents()}
    assert agents["Local/1004@sim-phones"]["status"] == "on_call"
    assert agents["Local/1001@sim-phones"]["status"] != "on_call"
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(contact.channel)
    ended = await http.wait_ended(contact.linkedid)
    assert kinds(ended) == [
        "CallArrived",
        "CallWaiting",
        "AgentRinging",
        "CallConnected",
        "CallHeld",
        "AgentLeftCall",
        "CallTransferred",
        "CallConnected",
        "AgentLeftCall",
        "CallEnded",
    ]
    (transfer,) = timeline_events(ended, "CallTransferred")
    assert (transfer["transfer"], transfer["from_agent"], transfer["to_agent"], transfer["to_queue"]) == (
        "attended",
        "Local/1001@sim-phones",
        "Local/1004@sim-phones",
        "",
    )
    assert ended["hold_s"] > 0
    assert (ended["transfers"], ended["disposition"], ended["ended_by"]) == (1, "answered", "caller")
    await assert_nothing_up(http, asterisk)
