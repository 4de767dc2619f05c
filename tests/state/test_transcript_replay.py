"""Every captured scenario replays through `ctid replay` to the calls the real Asterisk actually made."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from ctid.replay import replay_file
from tests.transcripts import TRANSCRIPT_DIR


def calls_of(name: str) -> list[dict[str, Any]]:
    return replay_file(TRANSCRIPT_DIR / f"{name}.ami.txt").calls()


def kinds(call: dict[str, Any]) -> list[str]:
    skip = {"call_started", "CallVariable", "after", "attended_transfer_event", "AgentLeftCall"}
    return [e["kind"] for e in call["timeline"] if e["kind"] not in skip]


def test_inbound_answered() -> None:
    (call,) = calls_of("inbound-answered")
    assert call["direction"] == "inbound"
    assert (call["caller_num"], call["caller_name"], call["dnis"]) == ("13800001111", "张伟", "4000")
    assert (call["queue"], call["customer"], call["tier"]) == ("sales", "c-1001", "A")
    assert call["agents"] == ["Local/1001@sim-phones"]
    assert kinds(call) == ["CallArrived", "CallWaiting", "AgentRinging", "CallConnected", "CallEnded"]
    assert (call["state"], call["disposition"], call["ended_by"]) == ("ended", "answered", "agent")
    assert call["answered_at"] - call["arrived_at"] == pytest.approx(2.0, abs=0.1)


def test_inbound_abandoned() -> None:
    (call,) = calls_of("inbound-abandoned")
    assert call["caller_name"] == "Zoë Ångström"
    assert kinds(call) == ["CallArrived", "CallWaiting", "CallAbandoned", "CallEnded"]
    abandoned = next(e for e in call["timeline"] if e["kind"] == "CallAbandoned")
    assert abandoned["queue"] == "sales"
    assert abandoned["wait_s"] == pytest.approx(3.0, abs=0.1)
    assert not abandoned["while_ringing"]
    assert (call["disposition"], call["ended_by"], call["agents"]) == ("abandoned", "caller", [])


def test_ring_no_answer_returns_to_waiting_and_reaches_the_next_agent() -> None:
    (call,) = calls_of("inbound-ring-no-answer")
    assert kinds(call) == [
        "CallArrived",
        "CallWaiting",
        "AgentRinging",
        "RingNoAnswer",
        "CallWaiting",
        "AgentRinging",
        "CallConnected",
        "CallEnded",
    ]
    rna = next(e for e in call["timeline"] if e["kind"] == "RingNoAnswer")
    assert (rna["agent"], rna["status"]) == ("Local/9002@sim-phones", "NOANSWER")
    waits = [e for e in call["timeline"] if e["kind"] == "CallWaiting"]
    assert waits[1]["requeued"] and waits[1]["arrived_at"] == waits[0]["arrived_at"]  # same contact kept
    assert call["agents"] == ["Local/1001@sim-phones"]
    assert (call["disposition"], call["ended_by"]) == ("answered", "caller")


def test_blind_transfer_to_a_queue() -> None:
    (call,) = calls_of("blind-transfer")
    transfer = next(e for e in call["timeline"] if e["kind"] == "CallTransferred")
    assert (transfer["transfer"], transfer["from_agent"], transfer["to_queue"]) == (
        "blind",
        "Local/1001@sim-phones",
        "200",
    )
    waits = [e for e in call["timeline"] if e["kind"] == "CallWaiting"]
    assert [w["queue"] for w in waits] == ["sales", "200"]
    assert not waits[1]["requeued"]  # a transfer to a queue starts a new contact there
    assert call["agents"] == ["Local/1001@sim-phones", "Local/1003@sim-phones"]
    assert (call["transfers"], call["disposition"], call["ended_by"]) == (1, "answered", "caller")


def test_attended_transfer_to_an_agent() -> None:
    (call,) = calls_of("attended-transfer")
    assert kinds(call) == [
        "CallArrived",
        "CallWaiting",
        "AgentRinging",
        "CallConnected",
        "CallHeld",
        "CallTransferred",
        "CallConnected",
        "CallEnded",
    ]
    transfer = next(e for e in call["timeline"] if e["kind"] == "CallTransferred")
    assert (transfer["transfer"], transfer["from_agent"], transfer["to_agent"]) == (
        "attended",
        "Local/1001@sim-phones",
        "Local/1004@sim-phones",
    )
    assert call["hold_s"] == pytest.approx(
        2.25, abs=0.1
    )  # on hold from the consult until 1004 took the caller
    assert (call["transfers"], call["ended_by"]) == (1, "caller")
    # each agent's segment ends once: 1001 at the transfer, 1004 when the caller hangs up
    left = [e["agent"] for e in call["timeline"] if e["kind"] == "AgentLeftCall"]
    assert left == ["Local/1001@sim-phones", "Local/1004@sim-phones"]


def test_outbound_human_reaches_an_agent() -> None:
    (call,) = calls_of("outbound-human")
    assert (call["direction"], call["campaign"], call["queue"]) == ("outbound", "c1", "outbound-c1")
    assert call["caller_num"] == "h5550001"
    assert call["amd"] == "NOTSURE"  # what the real AMD said of the short "hello"
    assert kinds(call) == ["CallArrived", "CallWaiting", "AgentRinging", "CallConnected", "CallEnded"]
    assert call["agents"] == ["Local/1001@sim-phones"]


def test_outbound_machine_is_not_an_abandon() -> None:
    (call,) = calls_of("outbound-machine")
    assert (call["direction"], call["amd"], call["disposition"]) == ("outbound", "MACHINE", "machine")
    assert "CallAbandoned" not in kinds(call)


def test_outbound_failed_busy_and_no_answer() -> None:
    calls = calls_of("outbound-failed")
    assert [(c["caller_num"], c["disposition"]) for c in calls] == [
        ("b5550003", "busy"),
        ("q5550004", "no-answer"),
    ]
    for call in calls:
        failed = next(e for e in call["timeline"] if e["kind"] == "OriginateFailed")
        assert failed["reason"] in (3, 5)
        assert call["direction"] == "outbound" and call["agents"] == []


def test_resync_session_sees_the_same_two_calls() -> None:
    replayer = replay_file(TRANSCRIPT_DIR / "resync.ami.txt")
    calls = replayer.calls()
    assert [(c["caller_name"], c["agents"]) for c in calls] == [
        ("陈静", []),
        ("Đặng Thị Hoa", ["Local/1001@sim-phones"]),
    ]
    # live events seen on both sessions count once
    assert sum(1 for e in replayer.domain_events if e.kind == "CallConnected") == 1


def test_inbound_over_sip() -> None:
    (call,) = calls_of("inbound-sip")
    assert (call["caller_num"], call["caller_name"]) == ("13800008888", "陈静")
    assert call["contact_channel"].startswith("PJSIP/customer-")
    assert call["agents"] == ["PJSIP/1001"]
    assert (call["disposition"], call["ended_by"]) == ("answered", "agent")


def test_the_cli_prints_the_same_calls_as_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "replay", str(TRANSCRIPT_DIR / "blind-transfer.ami.txt")],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    (call,) = json.loads(out)
    assert call["caller_name"] == "王芳" and call["transfers"] == 1
