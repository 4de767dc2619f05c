"""Agents' figures read the log's state rows of every version: old rows ("on_call") and today's agree."""

from __future__ import annotations

from reports.kpi import agent_performance, state_name
from tests.reports.test_kpi import END, START, Log

OLD = [
    (0, "ready", ""),
    (100, "reserved", ""),  # while the phone rang too
    (110, "on_call", ""),
    (400, "wrap_up", ""),
    (430, "ready", ""),
]
NEW = [
    (0, "ready", ""),
    (100, "reserved", ""),
    (105, "ringing", ""),
    (110, "on_call_inbound", ""),
    (400, "wrap_up", ""),
    (430, "ready", ""),
]


def figures(changes: list[tuple[float, str, str]], first: str) -> dict[str, object]:
    log = Log()
    log.states("a1", "PJSIP/1001", changes, first)
    [a1] = agent_performance(log.rows, start=START, end=END)
    return a1


def test_rows_written_before_and_after_the_one_vocabulary_give_the_same_figures() -> None:
    old, new = figures(OLD, "logged_out"), figures(NEW, "logged_out")
    assert old == new
    # reserved and ringing 10 s, on call 290 s, wrap-up 30 s: occupied 330 of 3600 logged-in seconds
    assert (new["ringing_s"], new["wrap_s"], new["occupied_s"], new["ready_s"]) == (10, 30, 330, 3270)


def test_an_outbound_call_is_occupied_time_too() -> None:
    outbound = [(0, "ready", ""), (100, "reserved", ""), (110, "on_call_outbound", ""), (400, "ready", "")]
    assert figures(outbound, "logged_out")["occupied_s"] == 300


def test_a_first_row_whose_previous_state_is_an_old_value_reads_it_as_today_s() -> None:
    on_call_before = figures([(600, "wrap_up", "")], "on_call")
    assert (on_call_before["occupied_s"], on_call_before["wrap_s"]) == (3600, 3000)
    assert state_name("on_call") == "on_call_inbound" and state_name("something_new") == "something_new"
