"""The wallboard's own state: today's abandoned callers become a worklist a supervisor can clear."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

from ctid.state import domain as d
from reports.log import InteractionLog, load_events, open_engine
from reports.store import contacts_since
from reports.wallboard import FOLLOWED, Wallboard

T0 = 1_795_420_800.0  # 2026-11-23 08:00 UTC


class Recorder:
    """Keeps the events a test plays, to play them again elsewhere (the log's writer)."""

    def __init__(self) -> None:
        self.events: list[d.DomainEvent] = []

    def on_event(self, server: str, event: d.DomainEvent) -> None:
        self.events.append(event)


def board() -> Wallboard:
    queues: list[dict[str, Any]] = [
        {"queue": "sales", "calls_waiting": 0, "longest_wait_s": 0.0, "agents": {}, "estimated_wait_s": None}
    ]
    agents: list[dict[str, Any]] = [{"id": "a1", "name": "Ann", "status": "ready", "device": "PJSIP/1001"}]
    return Wallboard(views=lambda: (queues, agents), clock=lambda: T0 + 3600)


def abandon(w: Wallboard | Recorder, linkedid: str, number: str, wait: float, at: float) -> None:
    w.on_event(
        "pbx1",
        d.CallArrived(at, linkedid, linkedid, "PJSIP/trunk-1", d.Direction.INBOUND, number, "", "4000"),
    )
    w.on_event("pbx1", d.CallVariable(at, linkedid, "CTID_TIER", "A"))
    w.on_event("pbx1", d.CallWaiting(at, linkedid, linkedid, "sales", at, False))
    w.on_event("pbx1", d.CallAbandoned(at + wait, linkedid, "sales", wait, False))
    w.on_event("pbx1", d.CallEnded(at + wait, linkedid, 16, "caller", "abandoned"))


def test_abandoned_callers_make_a_worklist_until_handled_or_reached() -> None:
    w = board()
    abandon(w, "c1", "13900000001", 40.0, T0 + 60)
    abandon(w, "c2", "13900000002", 2.0, T0 + 120)  # a short abandon: not worth a call back
    abandon(w, "c3", "13900000003", 30.0, T0 + 180)
    snap = json.loads(w.first_message())
    assert [(i["number"], i["tier"], i["wait_s"]) for i in snap["worklist"]] == [
        ("13900000001", "A", 40.0),
        ("13900000003", "A", 30.0),
    ]
    (tile,) = snap["queues"]
    assert (tile["offered"], tile["answered"], tile["abandon_rate"]) == (3, 0, 1.0)
    w.on_event("", w.mark("c1", "callback"))  # what the web handler publishes on the bus
    assert w.worklist["c1"].state == "callback"
    assert [i["number"] for i in json.loads(w.refresh() or "{}")["worklist"]] == ["13900000003"]
    # the third caller rings again and is answered: no longer on the list
    w.on_event(
        "pbx1",
        d.CallArrived(T0 + 300, "c4", "c4", "PJSIP/trunk-2", d.Direction.INBOUND, "13900000003", "", "4000"),
    )
    w.on_event("pbx1", d.CallConnected(T0 + 310, "c4", "PJSIP/1001", "PJSIP/1001-1", "sales", 10.0))
    assert json.loads(w.refresh() or "{}")["worklist"] == []


def test_a_restarted_wallboard_takes_up_todays_contacts_and_counts_the_open_ones_when_they_end(
    tmp_path: Path,
) -> None:
    """Today's figures come back after a restart from what the log's writer stored, open contacts too, and
    so do the worklist (with a supervisor's mark) and the calls each agent handled today."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    before = board()
    recorder = Recorder()
    abandon(recorder, "c1", "13900000001", 40.0, T0 + 60)
    abandon(recorder, "c2", "13900000002", 2.0, T0 + 120)
    abandon(recorder, "c5", "13900000005", 50.0, T0 + 130)
    abandon(recorder, "c6", "13900000006", 60.0, T0 + 140)
    events = [
        *recorder.events,
        d.WorkItemMarked(T0 + 195, "c5", "handled"),
        d.CallArrived(T0 + 160, "c7", "c7", "PJSIP/trunk-7", d.Direction.INBOUND, "13900000007", "", "4000"),
        d.CallWaiting(T0 + 160, "c7", "c7", "sales", T0 + 160, False),
        d.CallConnected(T0 + 165, "c7", "PJSIP/1001", "PJSIP/1001-7", "sales", 5.0),
        d.AgentLeftCall(T0 + 190, "c7", "PJSIP/1001"),
        d.CallEnded(T0 + 190, "c7", 16, "agent", "answered"),
        d.CallArrived(T0 + 200, "c3", "c3", "PJSIP/trunk-3", d.Direction.INBOUND, "13900000003", "", "4000"),
        d.CallWaiting(T0 + 200, "c3", "c3", "sales", T0 + 200, False),
        d.CallArrived(
            T0 - 30_000, "c0", "c0", "PJSIP/trunk-0", d.Direction.INBOUND, "13900000000", "", "4000"
        ),
        d.CallWaiting(T0 - 30_000, "c0", "c0", "sales", T0 - 30_000, False),  # yesterday (UTC)
    ]
    for event in events:
        before.on_event("pbx1", event)

    async def write() -> None:
        log = InteractionLog(url, tmp_path / "spool.jsonl")
        await log.start()
        for event in events:
            log.record("pbx1", event)
        await log.close()

    asyncio.run(write())
    after = board()
    engine = open_engine(url)
    with engine.connect() as connection:
        contacts = contacts_since(connection, T0 - 86_400)
    assert after.resume(contacts, load_events(engine, T0 - 86_400, math.inf, kinds=FOLLOWED)) == 6
    engine.dispose()
    restored = json.loads(after.first_message())
    assert {k: v for k, v in restored.items() if k != "at"} == {
        k: v for k, v in json.loads(before.first_message()).items() if k != "at"
    }
    assert [i["number"] for i in restored["worklist"]] == ["13900000001", "13900000006"]
    assert [a["handled_today"] for a in restored["agents"]] == [1]
    # the caller still waiting at the restart is answered after it: counted as answered, within T
    answer = d.CallConnected(T0 + 210, "c3", "PJSIP/1001", "PJSIP/1001-1", "sales", 10.0)
    for w in (before, after):
        w.on_event("pbx1", answer)
    (tile,) = json.loads(after.refresh() or "{}")["queues"]
    assert (tile["offered"], tile["answered"], tile["service_level"]) == (6, 2, 0.4)
    assert json.loads(before.refresh() or "{}")["queues"] == [tile]
