"""Inbound calls through a real Asterisk: ctid's FastAGI identifies the caller, the router connects an agent,
and ctid's HTTP API tells the same story as Asterisk's own channel list."""

from __future__ import annotations

import pytest

from tests.asterisk.harness import (
    AsteriskInstance,
    CtidHttp,
    Pbx,
    assert_matches_asterisk,
    assert_nothing_up,
    kinds,
    timeline_events,
)

pytestmark = pytest.mark.asterisk

AGENT_1001 = "Local/1001@sim-phones"


async def test_answered_call_identified_over_fastagi(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    contact = await pbx.inbound_call("13800001111", "张伟")

    waiting = await http.wait_call(contact.linkedid, lambda c: c["state"] == "waiting", "waiting")
    assert waiting["queue"] == "default", (
        "ctid's FastAGI `inbound` script sets CTID_QUEUE to the default queue"
    )
    assert (waiting["direction"], waiting["caller_num"], waiting["caller_name"], waiting["dnis"]) == (
        "inbound",
        "13800001111",
        "张伟",
        "4000",
    )
    assert waiting["contact_channel"] == contact.channel
    assert waiting["wait_s"] is not None and waiting["wait_s"] >= 0
    await assert_matches_asterisk(http, asterisk)
    status, metrics = await http.get("/metrics")
    assert status == 200 and 'ctid_calls_active{state="waiting"} 1.0' in metrics.splitlines()

    handled_before = next((a["handled"] for a in await http.agents() if a["device"] == AGENT_1001), 0)
    agent_channel = await pbx.connect(contact, AGENT_1001)
    connected = await http.wait_call(contact.linkedid, lambda c: c["state"] == "connected", "connected")
    assert (connected["agent"], connected["agents"]) == (AGENT_1001, [AGENT_1001])
    assert connected["answered_at"] is not None and connected["answered_at"] >= connected["arrived_at"]
    agents = {a["device"]: a for a in await http.agents()}
    assert agents[AGENT_1001]["status"] == "on_call"
    assert agents[AGENT_1001]["call"] == contact.linkedid
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(agent_channel)  # the agent hangs up first
    ended = await http.wait_ended(contact.linkedid)
    assert (ended["disposition"], ended["ended_by"], ended["state"]) == ("answered", "agent", "ended")
    assert kinds(ended) == [
        "CallArrived",
        "CallWaiting",
        "AgentRinging",
        "CallConnected",
        "AgentLeftCall",
        "CallEnded",
    ]
    (connected_event,) = timeline_events(ended, "CallConnected")
    assert (connected_event["agent"], connected_event["queue"]) == (AGENT_1001, "default")
    agents = {a["device"]: a for a in await http.agents()}
    assert agents[AGENT_1001]["status"] != "on_call" and agents[AGENT_1001]["call"] == ""
    assert agents[AGENT_1001]["handled"] == handled_before + 1
    await assert_nothing_up(http, asterisk)

    status, single = await http.get(f"/api/calls/{contact.linkedid}")
    assert status == 200 and single["disposition"] == "answered" and single["timeline"] == ended["timeline"]


async def test_abandoned_while_waiting_and_while_ringing(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    # two customers who give up 3 s after calling: one is still waiting, one is ringing agent 9003
    waits = await pbx.inbound_call("13900002222", "Zoë Ångström", patience_s=3)
    rings = await pbx.inbound_call("13900003333", "Đặng Thị Hoa", patience_s=3)
    waiting = await http.wait_call(waits.linkedid, lambda c: c["state"] == "waiting", "waiting")
    assert waiting["caller_name"] == "Zoë Ångström"
    await pbx.offer(rings, "Local/9003@sim-phones")
    ringing = await http.wait_call(rings.linkedid, lambda c: c["state"] == "ringing", "ringing 9003")
    assert ringing["agent"] == "Local/9003@sim-phones"
    await assert_matches_asterisk(http, asterisk)

    ended = await http.wait_ended(waits.linkedid, timeout=6)
    assert kinds(ended) == ["CallArrived", "CallWaiting", "CallAbandoned", "CallEnded"]
    (abandoned,) = timeline_events(ended, "CallAbandoned")
    assert abandoned["queue"] == "default"
    assert abandoned["wait_s"] == pytest.approx(3.0, abs=0.5), "the caller waited 3 s in ctid-wait"
    assert not abandoned["while_ringing"]
    assert (ended["disposition"], ended["ended_by"], ended["agents"]) == ("abandoned", "caller", [])

    ended = await http.wait_ended(rings.linkedid, timeout=6)
    assert kinds(ended) == ["CallArrived", "CallWaiting", "AgentRinging", "CallAbandoned", "CallEnded"]
    (abandoned,) = timeline_events(ended, "CallAbandoned")
    assert abandoned["while_ringing"], "the caller hung up while agent 9003's phone rang"
    assert abandoned["wait_s"] == pytest.approx(3.0, abs=0.5)
    assert (ended["disposition"], ended["ended_by"], ended["agents"]) == ("abandoned", "caller", [])
    agents = {a["device"]: a for a in await http.agents()}
    assert (
        agents["Local/9003@sim-phones"]["status"] != "on_call"
        and agents["Local/9003@sim-phones"]["call"] == ""
    )
    await assert_nothing_up(http, asterisk)


async def test_ring_no_answer_then_next_agent(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance) -> None:
    contact = await pbx.inbound_call("13700003333", "李娜")
    first = await http.wait_call(contact.linkedid, lambda c: c["state"] == "waiting", "waiting")

    await pbx.offer(contact, "Local/9002@sim-phones", ring_timeout_s=2)
    ringing = await http.wait_call(contact.linkedid, lambda c: c["state"] == "ringing", "ringing 9002")
    assert ringing["agent"] == "Local/9002@sim-phones"
    await assert_matches_asterisk(http, asterisk)

    back = await http.wait_call(
        contact.linkedid, lambda c: c["state"] == "waiting", "back to waiting", timeout=5
    )
    assert back["arrived_at"] == first["arrived_at"], "a ring-no-answer keeps the caller's place in the queue"
    assert back["agent"] == ""
    agents = {a["device"]: a for a in await http.agents()}
    assert agents["Local/9002@sim-phones"]["ring_no_answer"] >= 1
    assert agents["Local/9002@sim-phones"]["status"] != "on_call"
    await assert_matches_asterisk(http, asterisk)

    await pbx.connect(contact, "Local/1001@sim-phones")
    connected = await http.wait_call(
        contact.linkedid, lambda c: c["state"] == "connected", "connected to 1001"
    )
    assert connected["agents"] == [AGENT_1001]
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(contact.channel)  # the caller hangs up
    ended = await http.wait_ended(contact.linkedid)
    assert kinds(ended) == [
        "CallArrived",
        "CallWaiting",
        "AgentRinging",
        "RingNoAnswer",
        "CallWaiting",
        "AgentRinging",
        "CallConnected",
        "AgentLeftCall",
        "CallEnded",
    ]
    (rna,) = timeline_events(ended, "RingNoAnswer")
    assert (rna["agent"], rna["status"]) == ("Local/9002@sim-phones", "NOANSWER")
    assert rna["ring_s"] == pytest.approx(2.0, abs=0.5)
    waits = timeline_events(ended, "CallWaiting")
    assert waits[1]["requeued"] and waits[1]["arrived_at"] == waits[0]["arrived_at"]
    assert (ended["disposition"], ended["ended_by"]) == ("answered", "caller")
    await assert_nothing_up(http, asterisk)
