"""The wallboard's own state: today's abandoned callers become a worklist a supervisor can clear."""

from __future__ import annotations

import json
from typing import Any

from ctid.state import domain as d
from reports.wallboard import Wallboard

T0 = 1_795_420_800.0  # 2026-11-23 00:00 UTC


def board() -> Wallboard:
    queues: list[dict[str, Any]] = [
        {"queue": "sales", "calls_waiting": 0, "longest_wait_s": 0.0, "agents": {}, "estimated_wait_s": None}
    ]
    return Wallboard(views=lambda: (queues, []), clock=lambda: T0 + 3600)


def abandon(w: Wallboard, linkedid: str, number: str, wait: float, at: float) -> None:
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
    assert w.mark("c1", "callback").state == "callback"
    # the third caller rings again and is answered: no longer on the list
    w.on_event(
        "pbx1",
        d.CallArrived(T0 + 300, "c4", "c4", "PJSIP/trunk-2", d.Direction.INBOUND, "13900000003", "", "4000"),
    )
    w.on_event("pbx1", d.CallConnected(T0 + 310, "c4", "PJSIP/1001", "PJSIP/1001-1", "sales", 10.0))
    assert json.loads(w.refresh() or "{}")["worklist"] == []
