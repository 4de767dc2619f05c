"""Agent states across a restart: the pure restore, the resync's confirmation of calls, and the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert

from ctid.agents import AgentBook, AgentRecord, AgentState, SavedAgentState, restore_agents
from ctid.agents.book import saved_state
from ctid.agents.store import AgentStateRow, AgentStateStore
from ctid.db import make_engine
from ctid.state import domain as d

NOW = 10_000.0


def configured(*ids: str) -> list[AgentRecord]:
    """Agents as routing.yaml makes them: logged out since now."""
    return [AgentRecord(a, f"PJSIP/{1000 + i}", queues=("sales",), since=NOW) for i, a in enumerate(ids, 1)]


def saved(agent: str, status: AgentState, since: float, **kw: object) -> SavedAgentState:
    device = f"PJSIP/{1000 + 1 + 'abcdefgh'.index(agent)}"
    return SavedAgentState(agent, device, status, since, **kw)  # type: ignore[arg-type]


def restored_book(states: list[SavedAgentState], *ids: str, now: float = NOW) -> AgentBook:
    book = AgentBook(configured(*ids), wrap_up_s=30.0)
    book.adopt(restore_agents({s.agent_id: s for s in states}, list(book.agents.values()), now))
    return book


# ---- the pure restore ----------------------------------------------------------------------------------


def test_ready_paused_and_logged_out_come_back_as_they_were_with_their_since() -> None:
    states = [
        saved("a", AgentState.READY, 9_000.0),
        saved("b", AgentState.PAUSED, 9_100.0, pause_reason="break"),
        saved("c", AgentState.LOGGED_OUT, 8_000.0),
    ]
    result = restore_agents({s.agent_id: s for s in states}, configured("a", "b", "c"), NOW)
    got = {r.agent_id: (r.status, r.since, r.pause_reason) for r in result.records}
    assert got == {
        "a": (AgentState.READY, 9_000.0, ""),
        "b": (AgentState.PAUSED, 9_100.0, "break"),
        "c": (AgentState.LOGGED_OUT, 8_000.0, ""),
    }
    assert result.changes == () and result.unconfirmed == frozenset()
    assert result.counts["restored"] == 3 and result.counts["ready"] == 1 and result.counts["paused"] == 1


def test_agents_no_longer_configured_are_ignored_and_new_ones_start_logged_out() -> None:
    states = [saved("a", AgentState.READY, 9_000.0), saved("h", AgentState.READY, 9_000.0)]
    result = restore_agents({s.agent_id: s for s in states}, configured("a", "b"), NOW)
    assert [r.agent_id for r in result.records] == ["a", "b"]
    assert (result.records[1].status, result.records[1].since) == (AgentState.LOGGED_OUT, NOW)
    assert (result.counts["restored"], result.counts["new"], result.counts["ignored"]) == (1, 1, 1)


def test_the_configuration_wins_over_what_was_saved_for_device_skills_and_queues() -> None:
    state = SavedAgentState("a", "PJSIP/9999", AgentState.READY, 9_000.0)
    record = AgentRecord("a", "PJSIP/1001", skills=(("sales", 5),), queues=("sales",), since=NOW)
    (out,) = restore_agents({"a": state}, [record], NOW).records
    assert (out.device, out.skills, out.queues, out.status) == (
        "PJSIP/1001",
        (("sales", 5),),
        ("sales",),
        AgentState.READY,
    )
    assert out is not record and record.status is AgentState.LOGGED_OUT  # the input is left alone


def test_a_wrap_up_still_running_comes_back_with_its_deadline_and_ends_in_the_pause_it_came_from() -> None:
    state = saved(
        "a",
        AgentState.WRAP_UP,
        9_990.0,
        wrap_until=NOW + 20,
        resume=AgentState.PAUSED,
        resume_reason="break",
    )
    book = restored_book([state], "a")
    agent = book.agents["a"]
    assert (agent.status, agent.since, agent.wrap_until) == (AgentState.WRAP_UP, 9_990.0, NOW + 20)
    book.tick(NOW + 19)
    assert agent.status is AgentState.WRAP_UP
    book.tick(NOW + 21)
    assert (agent.status, agent.pause_reason, agent.since) == (AgentState.PAUSED, "break", NOW + 20)


def test_a_wrap_up_that_ran_out_while_ctid_was_away_is_ready_from_its_deadline() -> None:
    state = saved("a", AgentState.WRAP_UP, 9_000.0, wrap_until=9_030.0)
    result = restore_agents({"a": state}, configured("a"), NOW)
    (agent,) = result.records
    assert (agent.status, agent.since, agent.wrap_until) == (AgentState.READY, 9_030.0, None)
    assert result.changes == (d.AgentStateChanged(9_030.0, "", "a", "PJSIP/1001", "ready", "", "wrap_up"),)
    assert result.counts["wrap_up_ended"] == 1


def test_a_wrap_up_that_ran_out_resumes_the_pause_or_logout_a_direct_call_interrupted() -> None:
    states = [
        saved(
            "a",
            AgentState.WRAP_UP,
            9_000.0,
            wrap_until=9_030.0,
            resume=AgentState.PAUSED,
            resume_reason="lunch",
        ),
        saved("b", AgentState.WRAP_UP, 9_000.0, wrap_until=9_030.0, resume=AgentState.LOGGED_OUT),
    ]
    book = restored_book(states, "a", "b")
    a, b = book.agents["a"], book.agents["b"]
    assert (a.status, a.pause_reason, b.status) == (AgentState.PAUSED, "lunch", AgentState.LOGGED_OUT)
    assert [c.state for c in book.take_changes()] == ["paused", "logged_out"]
    assert [s.agent_id for s in book.take_saved()] == ["a", "b"]  # what changed is saved again


# ---- calls in progress: the first resync decides ----------------------------------------------------------


def on_call(agent: str, status: AgentState = AgentState.ON_CALL_INBOUND, **kw: object) -> SavedAgentState:
    return saved(agent, status, 9_900.0, call=f"L-{agent}", **kw)


def test_agents_saved_on_a_call_wait_for_the_resync_and_are_not_offered_calls_meanwhile() -> None:
    book = restored_book([on_call("a"), on_call("b", AgentState.RESERVED)], "a", "b")
    assert book.unconfirmed == {"a", "b"}
    assert [book.agents[a].status for a in "ab"] == [AgentState.ON_CALL_INBOUND, AgentState.RESERVED]
    assert book.views(NOW, offerable_only=True) == ()


def test_an_agent_whose_phone_is_still_on_the_call_stays_on_it_with_the_original_since() -> None:
    book = restored_book([on_call("a"), on_call("b", AgentState.ON_HOLD)], "a", "b")
    # the resync announces the calls in progress again: the same call changes nothing
    book.apply(d.CallConnected(NOW, "L-a", "PJSIP/1001", "PJSIP/1001-1", "sales", 3.0), NOW)
    assert book.confirm_calls({"PJSIP/1001": "L-a", "PJSIP/1002": "L-b"}, NOW + 1) == 0
    a, b = book.agents["a"], book.agents["b"]
    assert (a.status, a.since, a.call, a.calls_handled) == (AgentState.ON_CALL_INBOUND, 9_900.0, "L-a", 0)
    assert (b.status, b.since, b.call) == (AgentState.ON_HOLD, 9_900.0, "L-b")
    assert book.take_changes() == [] and book.unconfirmed == set()


def test_an_agent_whose_call_ended_while_ctid_was_away_takes_the_state_after_the_call() -> None:
    states = [
        on_call("a"),
        on_call("b", resume=AgentState.PAUSED, resume_reason="break"),
        on_call("c", AgentState.ON_HOLD, resume=AgentState.LOGGED_OUT),
        on_call("d", AgentState.RESERVED),
    ]
    book = restored_book(states, "a", "b", "c", "d")
    assert book.confirm_calls({}, NOW + 2) == 4
    got = {a.agent_id: (a.status, a.pause_reason, a.since, a.call) for a in book.agents.values()}
    assert got == {
        "a": (AgentState.READY, "", NOW + 2, ""),
        "b": (AgentState.PAUSED, "break", NOW + 2, ""),
        "c": (AgentState.LOGGED_OUT, "", NOW + 2, ""),
        "d": (AgentState.READY, "", NOW + 2, ""),
    }
    assert [v.agent_id for v in book.views(NOW + 2, offerable_only=True)] == ["a", "d"]
    assert {(c.agent, c.previous, c.state) for c in book.take_changes()} == {
        ("a", "on_call_inbound", "ready"),
        ("b", "on_call_inbound", "paused"),
        ("c", "on_hold", "logged_out"),
        ("d", "reserved", "ready"),
    }


def test_an_agent_whose_phone_is_on_another_call_is_on_that_call() -> None:
    book = restored_book([on_call("a")], "a")
    book.confirm_calls({"PJSIP/1001": "L-other"}, NOW + 1)
    agent = book.agents["a"]
    assert (agent.status, agent.call, agent.since) == (AgentState.ON_CALL_INBOUND, "L-other", NOW + 1)


def test_one_servers_resync_settles_only_the_agents_whose_phones_it_lists() -> None:
    book = restored_book([on_call("a"), on_call("b")], "a", "b")
    assert book.confirm_calls({}, NOW + 1, devices={"PJSIP/1001"}) == 1  # b's phone is on another server
    assert [book.agents[a].status for a in "ab"] == [AgentState.READY, AgentState.ON_CALL_INBOUND]
    assert book.unconfirmed == {"b"}
    assert book.confirm_calls({"PJSIP/1002": "L-b"}, NOW + 2) == 0  # every server has resynced
    assert book.agents["b"].status is AgentState.ON_CALL_INBOUND and book.unconfirmed == set()


def test_a_call_event_before_the_resync_settles_the_agent_first() -> None:
    book = restored_book([on_call("a")], "a")
    book.apply(d.AgentLeftCall(NOW, "L-a", "PJSIP/1001"), NOW)  # wrap-up starts as after any call
    book.confirm_calls({}, NOW + 1)
    assert book.agents["a"].status is AgentState.WRAP_UP


@given(
    status=st.sampled_from([AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT]),
    since=st.floats(min_value=0, max_value=NOW),
    reason=st.sampled_from(["break", "lunch", "no-answer"]),
)
def test_what_an_agent_sets_is_saved_and_restored_unchanged(
    status: AgentState, since: float, reason: str
) -> None:
    book = AgentBook(configured("a"))
    book.set_state("a", status, since, reason)
    (state,) = book.take_saved()
    (agent,) = restore_agents({"a": state}, configured("a"), NOW).records
    before = book.agents["a"]
    assert (agent.status, agent.since, agent.pause_reason) == (
        before.status,
        before.since,
        before.pause_reason,
    )
    assert saved_state(agent) == state


# ---- the store -----------------------------------------------------------------------------------------


async def test_the_store_keeps_the_newest_state_of_each_agent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/ctid.db")
    store = AgentStateStore(engine)
    assert await store.load() == {}
    store.save([saved("a", AgentState.READY, 1.0), saved("b", AgentState.PAUSED, 2.0, pause_reason="break")])
    assert await store.flush()
    store.save(
        [saved("a", AgentState.WRAP_UP, 3.0, wrap_until=33.0, resume=AgentState.PAUSED, resume_reason="x")]
    )
    await store.close()
    again = await AgentStateStore(make_engine(f"sqlite:///{tmp_path}/ctid.db")).load()
    assert again == {
        "a": saved(
            "a", AgentState.WRAP_UP, 3.0, wrap_until=33.0, resume=AgentState.PAUSED, resume_reason="x"
        ),
        "b": saved("b", AgentState.PAUSED, 2.0, pause_reason="break"),
    }


async def test_the_writer_saves_in_the_background_without_being_asked(tmp_path: Path) -> None:
    store = AgentStateStore(make_engine(f"sqlite:///{tmp_path}/ctid.db"), flush_interval_s=0.01)
    store.start()
    store.save([saved("a", AgentState.READY, 1.0)])
    for _ in range(200):  # bounded: the writer runs every 10 ms
        if not store.pending:
            break
        await asyncio.sleep(0.01)
    assert store.pending == 0
    assert await store.load() == {"a": saved("a", AgentState.READY, 1.0)}
    await store.close()


async def test_a_database_outage_keeps_states_pending_and_crashes_nothing(tmp_path: Path) -> None:
    away = tmp_path / "not-yet"  # SQLite cannot open a file in a directory that does not exist
    store = AgentStateStore(
        make_engine(f"sqlite:///{away}/ctid.db"), flush_interval_s=0.01, retry_interval_s=0.01
    )
    assert await store.load() is None  # read fails: agents start logged out, as before
    store.start()
    store.save([saved("a", AgentState.READY, 1.0)])
    assert not await store.flush()
    store.save([saved("a", AgentState.PAUSED, 2.0, pause_reason="break")])  # newer state while away
    assert store.pending == 1
    away.mkdir()  # the database is back
    for _ in range(200):
        if not store.pending:
            break
        await asyncio.sleep(0.01)
    await store.close()
    assert await store.load() == {"a": saved("a", AgentState.PAUSED, 2.0, pause_reason="break")}


async def test_rows_saved_by_an_older_version_load_in_todays_vocabulary(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/ctid.db")
    store = AgentStateStore(engine)
    assert await store.load() == {}  # creates the table
    row = {"device": "PJSIP/1001", "since": 5.0, "pause_reason": "", "wrap_until": None, "resume_reason": ""}
    with engine.begin() as connection:
        connection.execute(
            insert(AgentStateRow),
            [
                {**row, "agent_id": "a", "status": "on_call", "call": "L-a", "resume": "ready"},
                {**row, "agent_id": "b", "status": "on_break", "call": "", "resume": "ready"},
            ],
        )
    loaded = await store.load()
    assert loaded == {"a": saved("a", AgentState.ON_CALL_INBOUND, 5.0, call="L-a")}  # b: unknown, skipped
    await store.close()
