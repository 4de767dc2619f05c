"""What a resync re-announces is the same contact in every fold: in memory, in the store batch by batch and
rebuilt, and on the wallboard; a call that ended out of sight is lost, in no ratio.

The story: a caller waits in sales from T0; ctid restarts; the resync announces the call again (adopted)
and the caller is answered; a second caller was waiting too and hung up while ctid was away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from ctid.state import domain as d
from reports.kpi import AgentFold, KpiSettings, Outcome, contacts, queue_figures
from reports.log import CallSummary, InteractionLog, event_row, open_engine, resume_point
from reports.store import StoredContact, queue_tallies, rebuild
from reports.wallboard import Wallboard

T0 = 1_795_402_800.0
AGENT = "PJSIP/1001"


def arrival(linkedid: str, at: float, adopted: bool = False) -> list[d.DomainEvent]:
    uid = f"{linkedid}.1"
    return [
        d.CallArrived(at, linkedid, uid, "PJSIP/trunk-1", d.Direction.INBOUND, "0600", "", "4000", adopted),
        d.CallWaiting(at, linkedid, uid, "sales", at if not adopted else T0, False, adopted),
    ]


BEFORE = [*arrival("c1", T0), *arrival("c2", T0 + 5)]  # both wait when ctid stops at T0 + 30
AFTER = [  # the resync at T0 + 90 (ctid last saw the server at T0 + 30)
    *arrival("c1", T0 + 90, adopted=True),
    d.CallEnded(T0 + 30, "c2", 0, "", "lost"),
    d.CallConnected(T0 + 95, "c1", AGENT, f"{AGENT}-1", "sales", 95.0),
    d.CallConnected(T0 + 100, "c1", AGENT, f"{AGENT}-1", "sales", 100.0, adopted=True),  # a second resync
    d.AgentLeftCall(T0 + 160, "c1", AGENT),
    d.CallEnded(T0 + 160, "c1", 16, "agent", "answered"),
]


def rows(events: list[d.DomainEvent]) -> list[dict[str, Any]]:
    calls: dict[str, CallSummary] = {}
    return [
        event_row("pbx1", e, calls.setdefault(e.linkedid, CallSummary("pbx1", e.linkedid))) for e in events
    ]


def test_an_adopted_arrival_is_the_open_contact_and_a_lost_call_is_in_no_ratio() -> None:
    folded = {c.call_id: c for c in contacts(rows(BEFORE + AFTER))}
    assert len(folded) == 2
    answered, lost = folded["c1"], folded["c2"]
    assert (answered.outcome, answered.arrive, answered.wait) == (Outcome.ANSWERED, T0, 95.0)
    assert (lost.outcome, lost.wait, lost.outcome_at) == (Outcome.LOST, None, T0 + 30)
    figures = queue_figures([answered, lost])
    assert (figures["offered"], figures["answered"], figures["lost"], figures["open"]) == (2, 1, 1, 0)
    # the lost caller counts neither for nor against a ratio
    assert (figures["abandon_rate"], figures["sl_offered"], figures["service_level"]) == (0.0, 0.0, 0.0)
    assert queue_figures([lost])["abandon_rate"] is None


def test_an_adopted_connection_continues_the_agent_leg() -> None:
    fold = AgentFold()
    for row in rows(BEFORE + AFTER):
        fold.apply(row)
    assert [(leg.device, leg.connected_at, leg.left_at) for leg in fold.legs] == [(AGENT, T0 + 95, T0 + 160)]


async def test_across_a_restart_the_store_keeps_one_contact_and_says_what_was_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    first = InteractionLog(url, tmp_path / "spool.jsonl")
    await first.start()
    for event in BEFORE:
        first.record("pbx1", event)
    await first.close()

    engine = open_engine(url)
    with engine.connect() as connection:
        point = resume_point(connection, "pbx1")
    assert sorted(point.open_calls, key=lambda c: c.linkedid) == [
        d.OpenCall("c1", True, T0, "sales"),
        d.OpenCall("c2", True, T0 + 5, "sales"),
    ]
    assert (point.last_seen, point.open_gap) == (T0 + 5, None)

    second = InteractionLog(url, tmp_path / "spool.jsonl")  # the restarted ctid, on the same database
    await second.start()
    for event in AFTER:
        second.record("pbx1", event)
    await second.close()

    def stored() -> list[tuple[str, str, float, float | None]]:
        table = StoredContact.__table__
        with engine.connect() as connection:
            query = select(table.c.call_id, table.c.outcome, table.c.arrive, table.c.wait).order_by(
                table.c.call_id, table.c.seq
            )
            return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]

    expected = [("c1", "answered", T0, 95.0), ("c2", "lost", T0 + 5, None)]
    assert stored() == expected
    with engine.begin() as connection:
        tallies = queue_tallies(connection, start=T0 - 60, end=T0 + 3600, settings=KpiSettings())
        assert (tallies[("sales",)].offered, tallies[("sales",)].lost) == (2, 1)
        assert resume_point(connection, "pbx1").open_calls == []
        rebuild(connection)  # a re-fold of the whole log reads the adopted rows the same way
    assert stored() == expected
    engine.dispose()


def test_a_restarted_wallboard_counts_an_adopted_contact_once() -> None:
    board = Wallboard(views=lambda: ([], []), clock=lambda: T0 + 90)
    board.resume(contacts(rows(BEFORE)))  # today's contacts from the store: two still waiting
    for event in AFTER:
        board.on_event("pbx1", event)
    tally = board._tallies["sales"]
    assert (tally["offered"], tally["answered"], tally["lost"], tally["open"]) == (2, 1, 1, 0)
