"""KPIs over the interaction log: every figure of a small, realistic hour checked against hand arithmetic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.kpi import (
    KpiSettings,
    Outcome,
    agent_comparison,
    agent_performance,
    contacts,
    distributions,
    gaps_in,
    inbound_summary,
    interval_report,
    kpi_targets,
    percentile,
    queue_summary,
)

BASE = 1_705_276_800.0  # 2024-01-15 00:00 UTC, 01:00 in Paris
START, END = BASE, BASE + 3600
SETTINGS = KpiSettings(service_level_s={"support": 8.0})
A1, A2 = "PJSIP/1001", "PJSIP/1002"


class Log:
    """interaction_events rows as the log stores them: queue, agent, tier lifted out of `data`.

    Times are seconds after BASE; `rows` puts the stories, written one call at a time, in (at, id) order.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def add(
        self,
        at: float,
        kind: str,
        call: str = "",
        *,
        queue: str = "",
        agent: str = "",
        tier: str = "",
        **data: Any,
    ) -> None:
        n = len(self._rows) + 1
        self._rows.append(
            {
                "id": n,
                "event_id": f"e{n}",
                "at": BASE + at,
                "server": "pbx1",
                "call_id": call,
                "leg": "",
                "kind": kind,
                "queue": queue,
                "agent": agent,
                "campaign": "",
                "tier": tier,
                "data": data,
            }
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        return sorted(self._rows, key=lambda r: (r["at"], r["id"]))

    # ---- call stories ----

    def arrive(
        self,
        call: str,
        at: float,
        queue: str,
        *,
        dnis: str = "5550100",
        tier: str = "B",
        direction: str = "inbound",
    ) -> None:
        """The caller spends 10 s in the IVR, which sets the tier, then waits in `queue`."""
        self.add(
            at - 10, "CallArrived", call, uniqueid=call, channel="PJSIP/trunk", direction=direction, dnis=dnis
        )
        if tier:
            self.add(at - 1, "CallVariable", call, tier=tier, name="CTID_TIER", value=tier)
        self.wait(call, at, queue)

    def wait(self, call: str, at: float, queue: str, *, arrived: float | None = None) -> None:
        requeued = arrived is not None
        arrived_at = BASE + (at if arrived is None else arrived)
        self.add(
            at, "CallWaiting", call, queue=queue, uniqueid=call, arrived_at=arrived_at, requeued=requeued
        )

    def answer(self, call: str, at: float, device: str, queue: str, wait: float) -> None:
        self.add(at - 5, "AgentRinging", call, queue=queue, agent=device, agent_channel=f"{device}-1")
        self.add(
            at, "CallConnected", call, queue=queue, agent=device, agent_channel=f"{device}-1", wait_s=wait
        )

    def leave(self, call: str, at: float, device: str) -> None:
        self.add(at, "AgentLeftCall", call, agent=device)

    def end(self, call: str, at: float, disposition: str) -> None:
        self.add(at, "CallEnded", call, cause=16, ended_by="caller", disposition=disposition)

    def abandon(self, call: str, at: float, queue: str, wait: float) -> None:
        self.add(at, "CallAbandoned", call, queue=queue, wait_s=wait, while_ringing=False)
        self.end(call, at, "abandoned")

    def deflect(self, call: str, at: float, queue: str, to: str, reason: str, wait: float) -> None:
        self.add(at, "CallDeflected", call, queue=queue, to=to, reason=reason, wait_s=wait)

    def survey(self, call: str, at: float, agent: str, overall: int) -> None:
        self.add(at, "SurveyAnswered", call, agent=agent, overall=overall, buy_again=True, recommend=9)

    def states(self, agent: str, device: str, changes: list[tuple[float, str, str]], first: str) -> None:
        """Agent state changes (at, state, reason); `first` is the state before the first change."""
        previous = first
        for at, state, reason in changes:
            self.add(
                at,
                "AgentStateChanged",
                agent=agent,
                device=device,
                state=state,
                reason=reason,
                previous=previous,
            )
            previous = state


def hour() -> Log:
    """One hour of queue 'sales' (T 20 s) and 'support' (T 8 s) with two agents, a1 on 1001 and a2 on 1002."""
    log = Log()
    # c0 arrived before the period: counted in the period before
    log.arrive("c0", -50, "sales")
    log.abandon("c0", -20, "sales", 30)
    # c1 answered after 12 s by a1, 20 s on hold; survey 5
    log.arrive("c1", 100, "sales", tier="A")
    log.answer("c1", 112, A1, "sales", 12)
    log.add(150, "CallHeld", "c1", channel="PJSIP/trunk-1")
    log.add(170, "CallResumed", "c1", channel="PJSIP/trunk-1", held_s=20)
    log.leave("c1", 232, A1)
    log.end("c1", 232, "answered")
    log.survey("c1", 240, "a1", 5)
    # c2 abandoned after 3 s (short), c3 after 40 s
    log.arrive("c2", 200, "sales")
    log.abandon("c2", 203, "sales", 3)
    log.arrive("c3", 300, "sales", dnis="5550199")
    log.abandon("c3", 340, "sales", 40)
    # c4 overflows to voicemail after 60 s; c5 is sent to a callback at max wait and accepts it
    log.arrive("c4", 400, "sales", dnis="5550199", tier="C")
    log.deflect("c4", 460, "sales", "voicemail", "overflow", 60)
    log.end("c4", 520, "deflected")
    log.arrive("c5", 500, "sales", tier="C")
    log.deflect("c5", 530, "sales", "callback", "max_wait", 30)
    log.add(545, "CallVariable", "c5", name="CTID_CALLBACK", value="accepted")
    log.end("c5", 546, "deflected")
    # c6 rings a2 who lets it ring out, back to waiting with its arrive kept, answered by a1 at 30 s
    log.arrive("c6", 600, "sales", tier="A")
    log.add(605, "AgentRinging", "c6", queue="sales", agent=A2, agent_channel=f"{A2}-1")
    log.add(620, "RingNoAnswer", "c6", agent=A2, status="NOANSWER", ring_s=15)
    log.wait("c6", 620, "sales", arrived=600)
    log.answer("c6", 630, A1, "sales", 30)
    log.leave("c6", 730, A1)
    log.end("c6", 730, "answered")
    log.survey("c6", 740, "a1", 3)
    # c7 answered by a1 after 5 s, blind-transferred to 'support', answered there by a2 after 10 s
    log.arrive("c7", 800, "sales")
    log.answer("c7", 805, A1, "sales", 5)
    log.leave("c7", 865, A1)
    log.add(865, "CallTransferred", "c7", transfer="blind", from_agent=A1, to_agent="", to_queue="support")
    log.add(866, "CallVariable", "c7", name="CTID_QUEUE", value="support")
    log.wait("c7", 866, "support")
    log.answer("c7", 876, A2, "support", 10)
    log.leave("c7", 976, A2)
    log.end("c7", 976, "answered")
    log.survey("c7", 980, A2, 4)  # a survey naming the device, not the agent
    # c10 moved by overflow to 'support' after 50 s, hangs up there 10 s later
    log.arrive("c10", 1000, "sales")
    log.deflect("c10", 1050, "sales", "queue:support", "overflow", 50)
    log.add(1050, "CallVariable", "c10", name="CTID_QUEUE", value="support")
    log.wait("c10", 1050, "support")
    log.abandon("c10", 1060, "support", 10)
    # o1 a dialer call that waits in its own queue and drops
    log.arrive("o1", 1201, "outbound-spring", direction="outbound", dnis="", tier="")
    log.abandon("o1", 1203, "outbound-spring", 2)
    # c12 still waiting when the rows end; c9 answered by a1 10 s before the end, talking past it
    log.arrive("c12", 3500, "sales")
    log.arrive("c9", 3580, "sales", tier="A")
    log.answer("c9", 3590, A1, "sales", 10)
    log.leave("c9", 3700, A1)
    log.end("c9", 3700, "answered")
    log.states(
        "a1",
        A1,
        [
            (0, "ready", ""),
            (105, "reserved", ""),
            (112, "on_call", ""),
            (150, "on_hold", ""),
            (170, "on_call", ""),
            (232, "wrap_up", ""),
            (262, "ready", ""),
            (300, "paused", "break"),
            (400, "ready", ""),
            (625, "reserved", ""),
            (630, "on_call", ""),
            (730, "wrap_up", ""),
            (760, "ready", ""),
            (800, "reserved", ""),
            (805, "on_call", ""),
            (865, "wrap_up", ""),
            (895, "ready", ""),
            (1800, "paused", "lunch"),
            (2400, "ready", ""),
            (3585, "reserved", ""),
            (3590, "on_call", ""),
            (3700, "wrap_up", ""),
            (3730, "ready", ""),
        ],
        first="logged_out",
    )
    log.states(
        "a2",
        A2,
        [
            (500, "ready", ""),
            (605, "reserved", ""),
            (620, "paused", "no-answer"),
            (700, "ready", ""),
            (870, "reserved", ""),
            (876, "on_call", ""),
            (976, "wrap_up", ""),
            (1006, "ready", ""),
            (2000, "logged_out", ""),
        ],
        first="logged_out",
    )
    return log


GAPS = [
    {"server": "pbx1", "start": BASE + 1500, "end": BASE + 1560},
    {"server": "pbx1", "start": BASE - 7200, "end": BASE - 7000},
]


def by_queue(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {q["queue"]: q for q in rows}


# ---- contacts ------------------------------------------------------------------------------------


def test_a_ring_no_answer_keeps_the_contact_and_a_transfer_starts_a_new_one() -> None:
    found = {(c.call_id, c.queue): c for c in contacts(hour().rows, SETTINGS)}
    c6 = [c for c in found.values() if c.call_id == "c6"]
    assert [(c.arrive, c.outcome, c.wait, c.agent) for c in c6] == [(BASE + 600, Outcome.ANSWERED, 30, A1)]
    # c7: answered in sales after 5 s, then a new contact in support arriving at the transfer's 866
    assert (found["c7", "sales"].wait, found["c7", "sales"].agent) == (5, A1)
    assert (found["c7", "support"].arrive, found["c7", "support"].wait, found["c7", "support"].agent) == (
        BASE + 866,
        10,
        A2,
    )
    # c10: the move deflects the sales contact; the support contact is a new arrival that abandons
    assert (found["c10", "sales"].outcome, found["c10", "sales"].deflected_to) == (
        Outcome.DEFLECTED,
        "queue:support",
    )
    assert found["c10", "sales"].overflowed
    assert (found["c10", "support"].outcome, found["c10", "support"].wait) == (Outcome.ABANDONED, 10)
    assert found["c2", "sales"].short and not found["c3", "sales"].short
    assert found["c5", "sales"].callback_accepted
    assert (found["c12", "sales"].outcome, found["c12", "sales"].wait) == (Outcome.OPEN, None)
    assert (found["c3", "sales"].dnis, found["c1", "sales"].tier) == ("5550199", "A")
    assert found["c7", "sales"].offered_in(START, END) and not found["c0", "sales"].offered_in(START, END)


def test_a_tier_set_while_waiting_is_the_contacts_tier_but_not_after_it_left() -> None:
    log = Log()
    log.arrive("c1", 100, "sales", tier="")
    log.add(110, "CallVariable", "c1", name="CTID_TIER", value="A")
    log.answer("c1", 120, A1, "sales", 20)
    log.add(130, "CallVariable", "c1", name="CTID_TIER", value="C")
    assert [c.tier for c in contacts(log.rows)] == ["A"]


def test_an_outcome_without_its_arrival_in_the_rows_is_not_a_contact() -> None:
    log = Log()
    log.abandon("c1", 100, "sales", 30)
    assert contacts(log.rows) == []


# ---- queues --------------------------------------------------------------------------------------


def test_queue_summary_of_the_hour() -> None:
    queues = by_queue(queue_summary(hour().rows, start=START, end=END, settings=SETTINGS, gaps=GAPS))
    sales = queues["sales"]
    # c1 12 s, c6 30 s, c7 5 s, c9 10 s answered; c2 3 s (short) and c3 40 s abandoned; c4 voicemail,
    # c5 callback, c10 moved: deflected; c12 open. c0 arrived before the period.
    assert {
        k: sales[k] for k in ("offered", "answered", "abandoned", "short_abandoned", "deflected", "open")
    } == {
        "offered": 10,
        "answered": 4,
        "abandoned": 2,
        "short_abandoned": 1,
        "deflected": 3,
        "open": 1,
    }
    assert sales["abandon_rate"] == pytest.approx(1 / 6)  # c3 / (10 offered - 1 short - 3 deflected)
    assert sales["service_level"] == 3 / 5  # c1, c7, c9 within 20 s / (4 answered + c3 over 20 s)
    assert sales["sl_answered"] == 3 / 4
    # left the queue: 4 answered, c2, c3, c5 (callback); within 20 s: c1, c7, c9, c2
    assert sales["sl_removed"] == 4 / 7
    assert sales["sl_offered"] == pytest.approx(3 / 9)  # 3 / (10 offered - 1 short)
    assert sales["asa_s"] == (12 + 30 + 5 + 10) / 4
    # answered waits in order 5, 10, 12, 30: nearest rank ceil(p·4/100)
    assert (sales["wait_p50_s"], sales["p90_wait_s"], sales["wait_p95_s"]) == (10, 30, 30)
    assert sales["longest_wait_s"] == 60  # c4
    assert sales["time_to_abandon_avg_s"] == (3 + 40) / 2
    assert (sales["callbacks_offered"], sales["callbacks_accepted"], sales["overflowed"]) == (1, 1, 2)
    assert sales["service_level_s"] == 20.0
    support = queues["support"]
    # c7 answered after 10 s and c10 abandoned after 10 s, both over support's 8 s
    assert (support["offered"], support["answered"], support["abandoned"]) == (2, 1, 1)
    assert (support["abandon_rate"], support["service_level"], support["sl_answered"]) == (0.5, 0.0, 0.0)
    assert (support["asa_s"], support["service_level_s"]) == (10, 8.0)
    # the dialer's queue: one drop after 2 s, a short abandon, leaves every rate without a denominator
    outbound = queues["outbound-spring"]
    assert (outbound["offered"], outbound["short_abandoned"]) == (1, 1)
    assert (outbound["abandon_rate"], outbound["service_level"], outbound["asa_s"]) == (None, None, None)
    assert sales["data_gaps"] == [{"server": "pbx1", "start": BASE + 1500, "end": BASE + 1560}]
    assert list(queues) == ["outbound-spring", "sales", "support"]


def test_configured_queues_without_calls_are_listed_at_zero() -> None:
    [billing] = queue_summary([], start=START, end=END, queues=["billing"])
    assert (billing["queue"], billing["offered"], billing["service_level"], billing["wait_p50_s"]) == (
        "billing",
        0,
        None,
        None,
    )
    assert billing["data_gaps"] == []


def test_interval_report_counts_each_contact_in_the_quarter_hour_of_its_arrive() -> None:
    report = interval_report(hour().rows, start=START, end=END, interval_s=900, settings=SETTINGS, gaps=GAPS)
    assert len(report) == 4 * 3  # four quarter hours, three queues each
    sales = [r for r in report if r["queue"] == "sales"]
    assert [r["interval_start"] - BASE for r in sales] == [0, 900, 1800, 2700]
    # c1..c7 arrive in the first quarter, c10 in the second, c12 and c9 in the last
    assert [r["offered"] for r in sales] == [7, 1, 0, 2]
    assert [r["answered"] for r in sales] == [3, 0, 0, 1]
    assert (sales[0]["abandoned"], sales[0]["deflected"], sales[3]["open"]) == (2, 2, 1)
    assert sales[2]["service_level"] is None
    assert [r["data_gaps"] != [] for r in sales] == [False, True, False, False]
    assert [r["offered"] for r in report if r["queue"] == "support"] == [1, 1, 0, 0]


def test_interval_report_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError):
        interval_report([], start=START, end=END, interval_s=0)


# ---- agents --------------------------------------------------------------------------------------


def test_agent_performance_of_the_hour() -> None:
    agents = {a["agent"]: a for a in agent_performance(hour().rows, start=START, end=END, gaps=GAPS)}
    assert list(agents) == ["a1", "a2"]
    a1 = agents["a1"]
    # legs ended in the hour: c1, c6, c7; c9's leg (3590-3700) talks 10 s inside it but ends after
    assert (a1["handled"], a1["devices"]) == (3, [A1])
    assert a1["talk_s"] == (232 - 112 - 20) + (730 - 630) + (865 - 805) + (3600 - 3590)  # 270
    assert a1["hold_s"] == 20
    assert a1["wrap_s"] == 30 + 30 + 30  # 232-262, 730-760, 865-895
    assert a1["aht_s"] == pytest.approx((270 + 20 + 90) / 3)
    assert (a1["aht_talk_s"], a1["aht_hold_s"], a1["aht_wrap_s"]) == pytest.approx((90, 20 / 3, 30))
    # ready 0-105, 262-300, 400-625, 760-800, 895-1800, 2400-3585
    assert a1["ready_s"] == 105 + 38 + 225 + 40 + 905 + 1185  # 2498
    assert a1["ringing_s"] == 7 + 5 + 5 + 5
    # ringing 22 + on call 38 + 62 + 100 + 60 + 10 + on hold 20 + wrap 90
    assert a1["occupied_s"] == 402
    assert (a1["pause_s"], a1["pause_by_reason"]) == (700, {"break": 100, "lunch": 600})
    assert a1["login_s"] == 3600
    assert a1["occupancy"] == 402 / (402 + 2498)
    assert a1["utilization"] == 402 / 3600
    assert (a1["ring_no_answer"], a1["transfers_out"], a1["transfer_rate"]) == (0, 1, 1 / 3)
    assert (a1["csat"], a1["csat_top_box"], a1["csat_responses"], a1["csat_response_rate"]) == (
        4.0,
        0.5,
        2,
        2 / 3,
    )
    a2 = agents["a2"]
    # c7 in support 876-976, wrap 976-1006; logged in 500-2000
    assert (a2["handled"], a2["talk_s"], a2["hold_s"], a2["wrap_s"], a2["aht_s"]) == (1, 100, 0, 30, 130)
    assert (a2["login_s"], a2["ready_s"], a2["occupied_s"]) == (1500, 105 + 170 + 994, 15 + 6 + 100 + 30)
    assert a2["pause_by_reason"] == {"no-answer": 80}
    assert (a2["occupancy"], a2["utilization"]) == (151 / 1420, 151 / 1500)
    assert (a2["ring_no_answer"], a2["transfers_out"], a2["transfer_rate"]) == (1, 0, 0.0)
    assert (a2["csat"], a2["csat_top_box"], a2["csat_responses"]) == (4.0, 0.0, 1)
    assert (
        a1["data_gaps"] == a2["data_gaps"] == [{"server": "pbx1", "start": BASE + 1500, "end": BASE + 1560}]
    )


def test_agent_time_is_split_by_the_clock_at_the_period_edges() -> None:
    log = Log()
    log.states(
        "a3",
        "PJSIP/1003",
        [(-600, "ready", ""), (300, "paused", "training"), (500, "ready", "")],
        "logged_out",
    )
    log.add(
        4000,
        "AgentStateChanged",
        agent="a3",
        device="PJSIP/1003",
        state="logged_out",
        reason="",
        previous="ready",
    )
    # a call answered before the period, ended 60 s into it: handled in it, with 60 s of its talk
    log.add(-60, "CallConnected", "c1", queue="sales", agent="PJSIP/1003", agent_channel="x", wait_s=4)
    log.leave("c1", 60, "PJSIP/1003")
    [a3] = agent_performance(log.rows, start=START, end=END)
    assert (a3["handled"], a3["talk_s"]) == (1, 60)
    assert (a3["login_s"], a3["pause_by_reason"]) == (3600, {"training": 200})
    assert a3["ready_s"] == 300 + 3100  # 0-300 and 500-3600
    assert (a3["occupancy"], a3["csat"], a3["csat_top_box"]) == (0.0, None, None)


def test_an_agents_state_before_their_first_change_is_its_previous() -> None:
    log = Log()
    log.add(
        1000,
        "AgentStateChanged",
        agent="a4",
        device="PJSIP/1004",
        state="ready",
        reason="",
        previous="paused",
    )
    [a4] = agent_performance(log.rows, start=START, end=END)
    assert (a4["pause_by_reason"], a4["ready_s"]) == ({"unknown": 1000}, 2600)


def test_an_attended_transfer_from_hold_gives_each_agent_their_own_segment() -> None:
    log = Log()
    log.arrive("c1", 100, "sales")
    log.answer("c1", 110, A1, "sales", 10)
    log.add(200, "CallHeld", "c1", channel="PJSIP/trunk-1")
    # a1 consults a2 and completes: a1 leaves, the caller is bridged with a2 (no CallResumed)
    log.leave("c1", 260, A1)
    log.add(260, "CallTransferred", "c1", transfer="attended", from_agent=A1, to_agent=A2, to_queue="")
    log.add(260, "CallConnected", "c1", queue="sales", agent=A2, agent_channel="x", wait_s=160)
    log.leave("c1", 400, A2)
    log.end("c1", 400, "answered")
    agents = {a["agent"]: a for a in agent_performance(log.rows, start=START, end=END)}
    assert (agents[A1]["talk_s"], agents[A1]["hold_s"], agents[A1]["transfers_out"]) == (90, 60, 1)
    assert (agents[A2]["talk_s"], agents[A2]["hold_s"], agents[A2]["transfer_rate"]) == (140, 0, 0.0)
    [contact] = contacts(log.rows)  # one contact, answered by a1
    assert (contact.agent, contact.wait) == (A1, 10)


def test_agent_comparison_ranks_by_handled_then_aht_and_each_column() -> None:
    table = agent_comparison(hour().rows, start=START, end=END)
    assert [(a["agent"], a["rank"]) for a in table] == [("a1", 1), ("a2", 2)]
    # a1: handled 3, AHT 126.7, transfer rate 1/3, 0 ring-no-answer; a2: 1, 130, 0.0, 1; both CSAT 4.0
    assert table[0]["ranks"] == {
        "handled": 1,
        "aht_s": 1,
        "occupancy": 1,
        "utilization": 1,
        "transfer_rate": 2,
        "ring_no_answer": 1,
        "csat": 1,
    }
    assert table[1]["ranks"]["transfer_rate"] == 1 and table[1]["ranks"]["csat"] == 1


def test_agents_with_equal_handled_rank_by_the_shorter_aht_and_no_aht_last() -> None:
    log = Log()
    for n, (device, talk) in enumerate([("PJSIP/1", 300), ("PJSIP/2", 100)]):
        log.add(10, "CallConnected", f"c{n}", queue="q", agent=device, agent_channel="x", wait_s=1)
        log.leave(f"c{n}", 10 + talk, device)
    log.add(10, "RingNoAnswer", "c9", agent="PJSIP/3", status="NOANSWER", ring_s=15)
    table = agent_comparison(log.rows, start=START, end=END)
    assert [(a["agent"], a["rank"], a["ranks"]["aht_s"]) for a in table] == [
        ("PJSIP/2", 1, 1),
        ("PJSIP/1", 2, 2),
        ("PJSIP/3", 3, None),
    ]


# ---- distributions, breakdowns, targets, gaps ------------------------------------------------------


def counts(buckets: list[dict[str, Any]]) -> dict[float, int]:
    return {b["from_s"]: b["count"] for b in buckets if b["count"]}


def test_distributions_of_the_hour() -> None:
    out = distributions(hour().rows, start=START, end=END, gaps=GAPS)
    # handled legs: c1 100 s, c6 100 s, c7 60 s (a1) and 100 s (a2); c9 ends after the hour
    assert counts(out["talk"]) == {60.0: 4}
    assert out["talk"][-1] == {"from_s": 1800.0, "to_s": None, "count": 0}
    # answered: 12, 30, 5, 10 in sales, 10 in support; abandoned: 3, 40, 10, and the dialer's 2
    assert counts(out["wait_answered"]) == {5.0: 1, 10.0: 3, 30.0: 1}
    assert counts(out["wait_abandoned"]) == {0.0: 2, 10.0: 1, 30.0: 1}
    assert len(out["data_gaps"]) == 1


def test_inbound_summary_by_number_tier_and_local_hour() -> None:
    out = inbound_summary(hour().rows, start=START, end=END, timezone="Europe/Paris", settings=SETTINGS)
    dnis = {row["dnis"]: row for row in out["by_dnis"]}
    assert list(dnis) == ["5550100", "5550199"]  # the dialer call is left out
    # 5550199: c3 abandoned after 40 s, c4 deflected
    assert (
        dnis["5550199"]["offered"],
        dnis["5550199"]["abandon_rate"],
        dnis["5550199"]["service_level"],
    ) == (
        2,
        1.0,
        0.0,
    )
    # 5550100: c1, c6, c7, c9 (sales) and c7 (support) answered; within T: c1, c7, c9 of sales;
    # counted abandons over T: c10 in support (10 s > 8 s)
    assert (dnis["5550100"]["offered"], dnis["5550100"]["answered"], dnis["5550100"]["service_level"]) == (
        10,
        5,
        0.5,
    )
    tiers = {row["tier"]: row for row in out["by_tier"]}
    # A: c1 (12 s), c6 (30 s), c9 (10 s); C: c4, c5 deflected
    assert (tiers["A"]["offered"], tiers["A"]["service_level"]) == (3, pytest.approx(2 / 3))
    assert (tiers["B"]["offered"], tiers["C"]["offered"], tiers["C"]["deflected"]) == (7, 2, 2)
    hours = out["by_hour"]
    assert [h["hour"] for h in hours] == list(range(24))
    assert (hours[1]["offered"], sum(h["offered"] for h in hours)) == (12, 12)  # 00:00 UTC is 01:00 in Paris
    assert out["data_gaps"] == []


def test_kpi_targets_say_met_and_whether_the_trend_is_better() -> None:
    targets = {
        "service_level": {"min": 0.8},
        "abandon_rate": {"max": 0.05},
        "asa_s": {"max": 30},
        "occupancy": {"min": 0.75, "max": 0.85},
        "csat": {"min": 4.5},
    }
    current = {"service_level": 0.6, "abandon_rate": 0.2, "asa_s": 14.25, "occupancy": 0.9, "csat": None}
    previous = {"service_level": 0.7, "abandon_rate": 0.25, "asa_s": 14.25, "occupancy": 0.86, "csat": 4.6}
    rows = {r["kpi"]: r for r in kpi_targets(current, previous, targets)}
    assert {k: (r["met"], r["trend"], r["trend_is"]) for k, r in rows.items()} == {
        "service_level": (False, "down", "worse"),
        "abandon_rate": (False, "down", "better"),
        "asa_s": (True, "flat", "same"),
        "occupancy": (False, "up", "worse"),  # 0.05 above the band, was 0.01
        "csat": (None, None, None),
    }
    assert (rows["occupancy"]["actual"], rows["occupancy"]["previous"]) == (0.9, 0.86)
    assert rows["occupancy"]["target"] == {"min": 0.75, "max": 0.85}
    assert kpi_targets({"asa_s": 40}, None, {"asa_s": {"max": 30}})[0]["trend"] is None


def test_gaps_in_keeps_the_gaps_overlapping_the_period_and_open_ones() -> None:
    gaps = [
        {"server": "b", "start": 50.0, "end": 150.0},
        {"server": "a", "start": 10.0, "end": 100.0},
        {"server": "a", "start": 200.0, "end": 300.0},
        {"server": "c", "start": 190.0, "end": None},
    ]
    assert [g["server"] for g in gaps_in(gaps, 100.0, 200.0)] == ["b", "c"]
    assert gaps_in(gaps, 300.0, 400.0) == [{"server": "c", "start": 190.0, "end": None}]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 95)) == (10, 18, 19)
    assert (percentile([7.0], 50), percentile([], 50)) == (7, None)


# ---- invariants ----------------------------------------------------------------------------------

STORY = st.sampled_from(["answer", "abandon", "voicemail", "callback", "move", "ring_out", "open"])


@given(
    st.lists(
        st.tuples(STORY, st.floats(-600, 3600), st.floats(0, 300), st.sampled_from(["sales", "support"])),
        max_size=25,
    )
)
def test_every_offered_contact_has_exactly_one_outcome_and_ratios_stay_in_0_1(
    stories: list[tuple[str, float, float, str]],
) -> None:
    log = Log()
    arrivals = 0
    for n, (story, at, wait, queue) in enumerate(stories):
        call = f"c{n}"
        log.arrive(call, at, queue)
        arrivals += START <= BASE + at < END
        if story == "answer":
            log.answer(call, at + wait, A1, queue, wait)
        elif story == "abandon":
            log.abandon(call, at + wait, queue, wait)
        elif story in ("voicemail", "callback"):
            log.deflect(call, at + wait, queue, story, "overflow", wait)
        elif story == "move":
            log.deflect(call, at + wait, queue, "queue:other", "overflow", wait)
            log.wait(call, at + wait, "other")
            arrivals += START <= BASE + at + wait < END
        elif story == "ring_out":
            log.add(at + wait, "RingNoAnswer", call, agent=A1, status="NOANSWER", ring_s=wait)
            log.wait(call, at + wait, queue, arrived=at)
    summary = queue_summary(log.rows, start=START, end=END)
    assert sum(q["offered"] for q in summary) == arrivals
    for q in summary:
        assert q["offered"] == q["answered"] + q["abandoned"] + q["deflected"] + q["open"]
        assert q["short_abandoned"] <= q["abandoned"] and q["callbacks_accepted"] <= q["callbacks_offered"]
        for ratio in ("abandon_rate", "service_level", "sl_answered", "sl_removed", "sl_offered"):
            assert q[ratio] is None or 0 <= q[ratio] <= 1


STATES = st.sampled_from(["ready", "reserved", "on_call", "on_hold", "wrap_up", "paused", "logged_out"])


@given(st.lists(st.tuples(st.floats(0, 900), STATES), min_size=1, max_size=30), st.floats(-900, 900))
def test_agent_time_adds_up_to_login_time_inside_the_period(
    changes: list[tuple[float, str]], first_at: float
) -> None:
    log = Log()
    at, previous = first_at, "logged_out"
    for step, state in changes:
        at += step
        reason = "break" if state == "paused" else ""
        log.add(at, "AgentStateChanged", agent="a1", device=A1, state=state, reason=reason, previous=previous)
        previous = state
    for a in agent_performance(log.rows, start=START, end=END):
        assert a["ready_s"] + a["occupied_s"] + a["pause_s"] == pytest.approx(a["login_s"])
        assert 0 <= a["login_s"] <= END - START + 1e-6
        assert a["occupancy"] is None or 0 <= a["occupancy"] <= 1
        assert a["utilization"] is None or 0 <= a["utilization"] <= 1
