"""Simulated days: the queue summary ctid reports equals an independent recount of the raw AMI stream.

The recount reads the bytes ctid received (`ctid sim-day --ami-log`) with its own few lines of parsing,
not ctid's parser or state model, and applies METRICS.md directly to the dialplan contract: a contact
arrives when the caller's channel enters ctid-wait, is answered when it shares a bridge with an agent's
leg, abandons when it hangs up unanswered, is deflected when routing sends it to ctid-voicemail or
ctid-callback, hangs it up (CTID_SENT_TO) or moves it to another queue (CTID_QUEUE while waiting).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ctid.tooling.simday import DEFAULT_ROUTING, sim_day
from routing.config import load_routing

SHORT_S = 5.0


@dataclass
class Stay:
    queue: str
    arrive: float
    outcome: str = "open"
    wait: float = 0.0


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def blocks(data: bytes) -> list[dict[str, str]]:
    out = []
    for block in data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        headers: dict[str, str] = {}
        for line in block.split("\n"):
            key, sep, value = line.partition(": ")
            if sep and key not in headers:
                headers[key] = value
        if "Event" in headers:
            out.append(headers)
    return out


def recount(data: bytes) -> list[Stay]:
    stays: list[Stay] = []
    current: dict[str, Stay] = {}  # contact uniqueid -> its open stay
    context: dict[str, str] = {}  # uniqueid -> ctid context it is in
    queue: dict[str, str] = {}  # contact uniqueid -> CTID_QUEUE
    contact_of_bridge: dict[str, str] = {}  # bridge -> contact uniqueid in it
    in_bridge: dict[str, set[str]] = {}
    contacts: set[str] = set()
    rang_out: set[str] = set()  # contacts back from ctid-connect unanswered: same stay
    sent: set[str] = set()

    def close(uid: str, outcome: str, at: float) -> None:
        stay = current.pop(uid, None)
        if stay is not None:
            stay.outcome, stay.wait = outcome, at - stay.arrive

    for e in blocks(data):
        name, uid, at = e["Event"], e.get("Uniqueid", ""), float(e.get("Timestamp", "0") or 0)
        if name == "Newexten" and e.get("Context", "").startswith("ctid-"):
            ctx = e["Context"]
            if ctx == "ctid-inbound":
                contacts.add(uid)
            if uid not in contacts:
                continue
            previous = context.get(uid)
            context[uid] = ctx
            if ctx == "ctid-wait" and previous != "ctid-wait":
                if uid in current and uid in rang_out:
                    rang_out.discard(uid)  # ring-no-answer: the contact keeps its arrive
                else:
                    close(uid, "answered", at)  # (a transfer after an answer was closed already)
                    current[uid] = Stay(queue.get(uid, "default"), at)
                    stays.append(current[uid])
            elif ctx in ("ctid-voicemail", "ctid-callback") and previous != ctx:
                close(uid, "deflected", at)
        elif name == "VarSet" and uid in contacts and e.get("Variable") == "CTID_QUEUE":
            if context.get(uid) == "ctid-wait" and uid in current and queue.get(uid) != e["Value"]:
                close(uid, "deflected", at)  # moved while waiting: a new stay in the new queue
                queue[uid] = e["Value"]
                current[uid] = Stay(e["Value"], at)
                stays.append(current[uid])
            queue[uid] = e["Value"]
        elif name == "VarSet" and uid in contacts and e.get("Variable") == "CTID_SENT_TO" and e.get("Value"):
            sent.add(uid)
        elif name == "DialEnd" and uid in contacts and e.get("DialStatus") != "ANSWER":
            rang_out.add(uid)
        elif name == "BridgeEnter":
            bridge = e["BridgeUniqueid"]
            members = in_bridge.setdefault(bridge, set())
            members.add(uid)
            if uid in contacts:
                contact_of_bridge[bridge] = uid
            owner = contact_of_bridge.get(bridge)
            if owner is not None and len(members) >= 2 and owner in current:
                stay = current.pop(owner)
                stay.outcome, stay.wait = "answered", at - stay.arrive
        elif name == "BridgeLeave":
            in_bridge.get(e["BridgeUniqueid"], set()).discard(uid)
        elif name == "Hangup" and uid in contacts:
            close(uid, "deflected" if uid in sent else "abandoned", at)
    return stays


def summary(stays: list[Stay], thresholds: dict[str, float]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in sorted({s.queue for s in stays}):
        group = [s for s in stays if s.queue == name]
        t = thresholds.get(name, 20.0)
        answered = [s for s in group if s.outcome == "answered"]
        # METRICS.md: "abandoned" counts every abandon; the short ones are also shown apart and left out
        # of the abandon rate and the service level
        every_abandon = [s for s in group if s.outcome == "abandoned"]
        abandoned = [s for s in every_abandon if s.wait >= SHORT_S]
        short = [s for s in every_abandon if s.wait < SHORT_S]
        deflected = [s for s in group if s.outcome == "deflected"]
        waits = sorted(s.wait for s in answered)
        late_abandons = [s for s in abandoned if s.wait > t]
        sl_base = len(answered) + len(late_abandons)
        ab_base = len(group) - len(short) - len(deflected)
        out[name] = {
            "offered": len(group),
            "answered": len(answered),
            "abandoned": len(every_abandon),
            "short_abandoned": len(short),
            "deflected": len(deflected),
            "service_level": sum(w <= t for w in waits) / sl_base if sl_base else None,
            "abandon_rate": len(abandoned) / ab_base if ab_base else None,
            "asa_s": sum(waits) / len(waits) if waits else None,
            "p90_wait_s": waits[max(0, -(-90 * len(waits) // 100) - 1)] if waits else None,  # nearest rank
            "longest_wait_s": max((s.wait for s in group if s.outcome != "open"), default=None),
        }
    return out


def close_enough(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 0.01
    return bool(a == b)


@pytest.mark.parametrize(("seed", "calls_per_hour"), [(1, 60), (2, 90), (3, 45)])
def test_queue_summary_equals_an_independent_recount_of_the_ami_stream(
    tmp_path: Path, seed: int, calls_per_hour: float
) -> None:
    db = f"sqlite:///{tmp_path}/day.db"
    ami = tmp_path / "day.ami"
    result = asyncio.run(sim_day(seed=seed, hours=2, db_url=db, ami_log=ami, calls_per_hour=calls_per_hour))
    assert result["calls_ended"] > 50
    start = result["virtual_start"]
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctid.cli",
            "report",
            "queue-summary",
            "--db",
            db,
            "--format",
            "json",
            "--from",
            iso(start - 60),
            "--to",
            iso(start + 3 * 3600),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    reported = {q["queue"]: q for q in json.loads(printed)}
    cfg = load_routing(DEFAULT_ROUTING)
    expected = summary(
        recount(ami.read_bytes()), {n: q.service_level.threshold_s for n, q in cfg.queues.items()}
    )
    assert expected and sum(q["abandoned"] for q in expected.values()) > 0
    for name, figures in expected.items():
        for key, value in figures.items():
            assert close_enough(reported[name][key], value), (seed, name, key, reported[name][key], value)
