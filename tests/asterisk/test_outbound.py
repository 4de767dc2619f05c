"""Dialer calls on a real Asterisk: Originate into ctid-outbound, answering machines, failed attempts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.asterisk.amiclient import Message, event
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


async def originate(pbx: Pbx, number: str, contact_id: str, timeout_ms: int = 20000) -> tuple[str, str]:
    """The dialer's Originate of `Local/NUMBER@sim-callees` to ctid-outbound; returns (ActionID, linkedid)."""
    mark = pbx.ami.mark()
    action_id = pbx.ami.send(
        "Originate",
        Channel=f"Local/{number}@sim-callees",
        Context="ctid-outbound",
        Exten="s",
        Priority="1",
        Async="true",
        Timeout=str(timeout_ms),
        CallerID='"Campaign c1" <4000>',
        Variable=["CTID_CAMPAIGN=c1", f"CTID_CONTACT={contact_id}"],
    )
    created = await pbx.ami.wait_for(event("Newchannel", Channel=f"Local/{number}@sim-callees-*"), after=mark)
    return action_id, created["Linkedid"]


async def originate_response(pbx: Pbx, action_id: str, timeout: float = 15.0) -> Message:
    return await pbx.ami.wait_for(
        lambda m: m.get("Event") == "OriginateResponse" and m.get("ActionID") == action_id, timeout=timeout
    )


async def test_answered_by_a_person_reaches_an_agent(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    mark = pbx.ami.mark()
    action_id, linkedid = await originate(pbx, "h5550001", "42")
    dialing = await http.wait_call(linkedid, lambda c: c["state"] == "dialing", "dialing")
    assert dialing["direction"] == "outbound"
    await assert_matches_asterisk(http, asterisk)

    response = await originate_response(pbx, action_id)
    assert response["Response"] == "Success", response
    waiting_event = await pbx.ami.wait_for(
        event("Newexten", Context="ctid-wait", Application="MusicOnHold", Linkedid=linkedid),
        after=mark,
        timeout=10,
    )
    contact = Contact(waiting_event["Channel"], waiting_event["Uniqueid"], linkedid)
    waiting = await http.wait_call(linkedid, lambda c: c["state"] == "waiting", "waiting for an agent")
    assert waiting["queue"] == "outbound-c1", (
        "ctid's FastAGI `outbound` script queues a person for the campaign"
    )
    assert (waiting["direction"], waiting["campaign"], waiting["caller_num"]) == (
        "outbound",
        "c1",
        "h5550001",
    )
    assert waiting["amd"] in ("HUMAN", "NOTSURE")
    assert waiting["contact_channel"] == contact.channel
    await assert_matches_asterisk(http, asterisk)

    await pbx.connect(contact, "Local/1001@sim-phones")
    connected = await http.wait_call(linkedid, lambda c: c["state"] == "connected", "connected to 1001")
    assert connected["agents"] == ["Local/1001@sim-phones"]
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(contact.channel)
    ended = await http.wait_ended(linkedid)
    assert kinds(ended) == [
        "CallArrived",
        "CallWaiting",
        "AgentRinging",
        "CallConnected",
        "AgentLeftCall",
        "CallEnded",
    ]
    assert (ended["disposition"], ended["queue"], ended["campaign"]) == ("answered", "outbound-c1", "c1")
    contact_ids = [e["value"] for e in timeline_events(ended, "CallVariable") if e["name"] == "CTID_CONTACT"]
    assert contact_ids == ["42"]
    await assert_nothing_up(http, asterisk)


async def test_answering_machine_is_hung_up(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance) -> None:
    action_id, linkedid = await originate(pbx, "m5550002", "43")
    response = await originate_response(pbx, action_id)
    assert response["Response"] == "Success", response
    ended = await http.wait_ended(linkedid, timeout=12)  # AMD listens to the greeting, then ctid hangs up
    assert (ended["direction"], ended["amd"], ended["disposition"]) == ("outbound", "MACHINE", "machine")
    assert (ended["campaign"], ended["caller_num"]) == ("c1", "m5550002")
    assert "CallAbandoned" not in kinds(ended)
    assert "CallWaiting" not in kinds(ended), "a machine is never queued for an agent"
    assert ended["agents"] == []
    await assert_nothing_up(http, asterisk)


async def failed_attempts(
    pbx: Pbx, http: CtidHttp, numbers: list[str], timeout_ms: int
) -> list[dict[str, Any]]:
    """The dialer places several calls at once that all fail; returns ctid's ended calls in that order."""
    placed = []
    for index, number in enumerate(numbers):
        placed.append(await originate(pbx, number, str(100 + index), timeout_ms=timeout_ms))
    for number, (action_id, _) in zip(numbers, placed, strict=True):
        response = await originate_response(pbx, action_id, timeout=timeout_ms / 1000 + 5)
        assert response["Response"] == "Failure", (number, response)
    return [await http.wait_ended(linkedid) for _, linkedid in placed]


def summary(ended: dict[str, Any]) -> tuple[str, str, str, list[tuple[int, str, str]]]:
    failures = [
        (e["reason"], e["reason_text"], e["channel"]) for e in timeline_events(ended, "OriginateFailed")
    ]
    return ended["direction"], ended["caller_num"], ended["disposition"], failures


async def test_busy_numbers_fail_the_originate(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance) -> None:
    # thirty attempts: Asterisk orders OriginateResponse and the Hangup events differently each time
    numbers = [f"b55510{i:02d}" for i in range(30)]
    ended = await failed_attempts(pbx, http, numbers, timeout_ms=5000)
    expected = [("outbound", n, "busy", [(5, "busy", f"Local/{n}@sim-callees")]) for n in numbers]
    assert [summary(call) for call in ended] == expected, (
        "each busy number ends as a busy outbound call carrying its OriginateFailed (Reason 5), whether "
        "Asterisk sends the OriginateResponse before or after the Hangup events of the Local channels"
    )
    assert all(call["agents"] == [] for call in ended)
    await assert_nothing_up(http, asterisk)


async def test_unanswered_numbers_fail_the_originate(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    numbers = [f"q55520{i:02d}" for i in range(8)]
    ended = await failed_attempts(pbx, http, numbers, timeout_ms=1500)
    expected = [("outbound", n, "no-answer", [(3, "no-answer", f"Local/{n}@sim-callees")]) for n in numbers]
    assert [summary(call) for call in ended] == expected, (
        "each number that rings out ends as a no-answer outbound call carrying its OriginateFailed "
        "(Reason 3), whether Asterisk sends the OriginateResponse before or after the Hangup events"
    )
    await assert_nothing_up(http, asterisk)
