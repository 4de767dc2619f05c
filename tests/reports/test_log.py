"""The interaction log: events in order with their call's queue and tier, the per-call summary, data gaps,
the Alembic schema, and the spool that keeps every event through a database outage, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, select

from ctid.db import Base
from ctid.state import domain as d
from ctid.tooling.pgtemp import PostgresServer
from reports.log import (
    LOG_TABLES,
    VERSION_TABLE,
    CallSummary,
    InteractionLog,
    event_row,
    load_events,
    load_gaps,
    open_engine,
    upgrade_database,
)

T0 = 1_795_402_800.0
CALLER = "13800138000"


def answered_call(
    linkedid: str, at: float, *, queue: str = "sales", agent: str = "PJSIP/1001"
) -> list[d.DomainEvent]:
    """A tier-A customer calls, waits, rings an agent, talks, is held once, and the agent hangs up."""
    uid = f"{linkedid}.1"
    agent_channel = f"{agent}-0000000a"
    return [
        d.CallArrived(at, linkedid, uid, "PJSIP/trunk-00000001", d.Direction.INBOUND, CALLER, "张伟", "4000"),
        d.CallVariable(at + 1, linkedid, "CTID_CUSTOMER", "C42"),
        d.CallVariable(at + 1, linkedid, "CTID_TIER", "A"),
        d.CallWaiting(at + 2, linkedid, uid, queue, at + 2, False),
        d.AgentRinging(at + 5, linkedid, uid, agent, agent_channel, queue),
        d.CallConnected(at + 8, linkedid, agent, agent_channel, queue, 6.0),
        d.CallHeld(at + 20, linkedid, "PJSIP/trunk-00000001"),
        d.CallResumed(at + 30, linkedid, "PJSIP/trunk-00000001", 10.0),
        d.AgentLeftCall(at + 60, linkedid, agent),
        d.CallEnded(at + 60, linkedid, 16, "agent", "answered"),
    ]


def transferred_call(linkedid: str, at: float) -> list[d.DomainEvent]:
    """An answered call the agent sends on to queue support: five events."""
    return [
        d.CallArrived(
            at, linkedid, f"{linkedid}.1", "PJSIP/trunk-1", d.Direction.INBOUND, CALLER, "", "4000"
        ),
        d.CallWaiting(at + 0.1, linkedid, f"{linkedid}.1", "sales", at + 0.1, False),
        d.CallConnected(at + 0.2, linkedid, "PJSIP/1001", "PJSIP/1001-1", "sales", 0.1),
        d.CallTransferred(at + 0.3, linkedid, d.TransferKind.BLIND, "PJSIP/1001", "", "support"),
        d.CallEnded(at + 0.4, linkedid, 16, "caller", "answered"),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ctid.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def interactions(url: str) -> dict[str, dict[str, Any]]:
    engine = open_engine(url)
    with engine.connect() as connection:
        table = Base.metadata.tables["interactions"]
        found = {row["call_id"]: dict(row) for row in connection.execute(select(table)).mappings()}
    engine.dispose()
    return found


def event_ids(url: str) -> list[str]:
    engine = open_engine(url)
    with engine.connect() as connection:
        table = Base.metadata.tables["interaction_events"]
        found = list(connection.execute(select(table.c.event_id).order_by(table.c.id)).scalars())
    engine.dispose()
    return found


def sequence(ids: list[str]) -> list[int]:
    return [int(event_id.rsplit(":", 1)[1]) for event_id in ids]


async def test_a_call_is_logged_in_order_with_its_queue_and_tier(database: str, tmp_path: Path) -> None:
    log = InteractionLog(database, tmp_path / "spool.jsonl")
    await log.start()
    events = answered_call("1700000000.1", T0)
    events.insert(5, d.AgentDeviceChanged(T0 + 6, "", "PJSIP/1001", "INUSE"))
    events.append(
        d.AgentStateChanged(T0 + 60, "1700000000.1", "alice", "PJSIP/1001", "wrap_up", "", "on_call")
    )
    for event in events:
        log.record("" if isinstance(event, d.AgentStateChanged) else "pbx1", event)
    await log.flush()
    assert (log.written, log.pending, log.spooled) == (len(events), 0, 0)

    rows = load_events(database, T0, T0 + 3600)
    assert [r["kind"] for r in rows] == [e.kind for e in events]
    assert sequence([r["event_id"] for r in rows]) == list(range(1, len(events) + 1))
    columns = [(r["server"], r["call_id"], r["leg"], r["queue"], r["agent"], r["tier"]) for r in rows]
    call = "1700000000.1"
    assert columns == [
        ("pbx1", call, f"{call}.1", "", "", ""),  # arrived: tier and queue not known yet
        ("pbx1", call, "", "", "", ""),  # CTID_CUSTOMER
        ("pbx1", call, "", "", "", "A"),
        ("pbx1", call, f"{call}.1", "sales", "", "A"),
        ("pbx1", call, f"{call}.1", "sales", "PJSIP/1001", "A"),
        ("pbx1", "", "", "", "PJSIP/1001", ""),  # the device's state belongs to no call
        ("pbx1", call, "PJSIP/1001-0000000a", "sales", "PJSIP/1001", "A"),
        ("pbx1", call, "", "sales", "", "A"),  # held: queue and tier from what came before
        ("pbx1", call, "", "sales", "", "A"),
        ("pbx1", call, "", "sales", "PJSIP/1001", "A"),
        ("pbx1", call, "", "sales", "", "A"),
        ("", call, "", "", "alice", ""),  # routing's agent states carry no server and no call context
    ]
    arrived = rows[0]["data"]
    assert arrived == {
        "uniqueid": f"{call}.1",
        "channel": "PJSIP/trunk-00000001",
        "direction": "inbound",
        "caller_num": CALLER,
        "caller_name": "张伟",
        "dnis": "4000",
    }
    assert rows[6]["data"] == {"agent_channel": "PJSIP/1001-0000000a", "wait_s": 6.0}
    assert rows[-1]["data"] == {
        "device": "PJSIP/1001",
        "state": "wrap_up",
        "reason": "",
        "previous": "on_call",
    }

    summary = interactions(database)
    assert list(summary) == [call]
    assert summary[call] == {
        "server": "pbx1",
        "call_id": call,
        "direction": "inbound",
        "caller_num": CALLER,
        "dnis": "4000",
        "first_queue": "sales",
        "last_queue": "sales",
        "tier": "A",
        "customer": "C42",
        "campaign": "",
        "agents": ["PJSIP/1001"],
        "arrived_at": T0,
        "answered_at": T0 + 8,
        "ended_at": T0 + 60,
        "disposition": "answered",
        "transfers": 0,
        "last_event_at": T0 + 60,
    }
    await log.close()


async def test_event_row_matches_what_the_log_stores(tmp_path: Path) -> None:
    """The wallboard builds rows in memory with event_row; the reports read them back: the same rows."""
    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    log = InteractionLog(url, tmp_path / "spool.jsonl")
    await log.start()
    call = CallSummary("pbx1", "7.1")
    in_memory = []
    for event in answered_call("7.1", T0):
        log.record("pbx1", event)
        in_memory.append(event_row("pbx1", event, call))
    await log.close()
    stored = [
        {k: v for k, v in r.items() if k not in ("id", "event_id")} for r in load_events(url, T0, T0 + 99)
    ]
    assert stored == in_memory
    assert interactions(url)["7.1"] == {
        **{f: getattr(call, f) for f in CallSummary.__dataclass_fields__},
        "agents": ["PJSIP/1001"],
    }


async def test_transfer_to_another_queue_and_an_outbound_campaign(database: str, tmp_path: Path) -> None:
    log = InteractionLog(database, tmp_path / "spool.jsonl")
    await log.start()
    call = "1700000100.5"
    events: list[d.DomainEvent] = [
        d.CallVariable(T0 - 5, call, "CTID_CAMPAIGN", "renewals"),
        d.CallArrived(T0, call, "u1", "PJSIP/trunk-2", d.Direction.OUTBOUND, CALLER, "", "5551000"),
        d.CallWaiting(T0 + 1, call, "u1", "sales", T0 + 1, False),
        d.CallConnected(T0 + 2, call, "PJSIP/1001", "PJSIP/1001-1", "sales", 1.0),
        d.CallTransferred(T0 + 50, call, d.TransferKind.BLIND, "PJSIP/1001", "", "support"),
        d.AgentLeftCall(T0 + 50, call, "PJSIP/1001"),
        d.CallWaiting(T0 + 51, call, "u1", "support", T0 + 51, False),
        d.CallConnected(T0 + 70, call, "PJSIP/1003", "PJSIP/1003-2", "support", 19.0),
        d.CallEnded(T0 + 200, call, 16, "caller", "answered"),
    ]
    for event in events:
        log.record("pbx1", event)
    await log.close()

    rows = load_events(database, T0 - 10, T0 + 300)
    assert [(r["kind"], r["queue"], r["agent"], r["campaign"]) for r in rows] == [
        ("CallVariable", "", "", "renewals"),
        ("CallArrived", "", "", "renewals"),
        ("CallWaiting", "sales", "", "renewals"),
        ("CallConnected", "sales", "PJSIP/1001", "renewals"),
        ("CallTransferred", "sales", "PJSIP/1001", "renewals"),  # counted where the agent answered
        ("AgentLeftCall", "sales", "PJSIP/1001", "renewals"),
        ("CallWaiting", "support", "", "renewals"),
        ("CallConnected", "support", "PJSIP/1003", "renewals"),
        ("CallEnded", "support", "", "renewals"),
    ]
    assert [r["kind"] for r in load_events(database, T0, T0 + 300, queue="support")] == [
        "CallWaiting",
        "CallConnected",
        "CallEnded",
    ]
    assert [r["kind"] for r in load_events(database, T0, T0 + 60, agent="PJSIP/1001")] == [
        "CallConnected",
        "CallTransferred",
        "AgentLeftCall",
    ]
    summary = interactions(database)[call]
    assert summary["direction"] == "outbound"
    assert (summary["first_queue"], summary["last_queue"], summary["campaign"]) == (
        "sales",
        "support",
        "renewals",
    )
    assert (summary["agents"], summary["transfers"]) == (["PJSIP/1001", "PJSIP/1003"], 1)
    assert (summary["arrived_at"], summary["answered_at"], summary["ended_at"]) == (T0, T0 + 2, T0 + 200)


async def test_a_call_across_a_restart_keeps_its_summary_and_tier(tmp_path: Path) -> None:
    """What the log knows of a call lives in the database, so a ctid restart mid-call loses none of it."""
    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    events = answered_call("9.1", T0)
    first = InteractionLog(url, tmp_path / "spool.jsonl")
    await first.start()
    for event in events[:5]:
        first.record("pbx1", event)
    await first.close()
    second = InteractionLog(url, tmp_path / "spool.jsonl")
    await second.start()
    for event in events[5:]:
        second.record("pbx1", event)
    await second.close()

    rows = load_events(url, T0, T0 + 99)
    assert [(r["queue"], r["tier"]) for r in rows[5:]] == [("sales", "A")] * 5
    assert len({r["event_id"].split(":")[0] for r in rows}) == 2  # two runs, two id prefixes
    summary = interactions(url)["9.1"]
    assert (summary["arrived_at"], summary["answered_at"], summary["ended_at"]) == (T0, T0 + 8, T0 + 60)
    assert (summary["tier"], summary["customer"], summary["agents"]) == ("A", "C42", ["PJSIP/1001"])


async def test_gaps_are_recorded_open_then_closed(database: str, tmp_path: Path) -> None:
    log = InteractionLog(database, tmp_path / "spool.jsonl")
    await log.start()
    log.record_gap("pbx1", T0)
    await log.flush()
    assert load_gaps(database, T0 - 60, T0 + 60) == [{"server": "pbx1", "start": T0, "end": None}]
    log.record_gap("pbx2", T0 + 10, T0 + 20)
    log.record_gap("pbx1", T0, T0 + 30)
    await log.close()
    assert load_gaps(database, T0 - 60, T0 + 60) == [
        {"server": "pbx1", "start": T0, "end": T0 + 30},
        {"server": "pbx2", "start": T0 + 10, "end": T0 + 20},
    ]
    assert load_gaps(database, T0 + 25, T0 + 60) == [{"server": "pbx1", "start": T0, "end": T0 + 30}]


async def test_an_unreachable_database_spools_in_order_and_replays_when_back(tmp_path: Path) -> None:
    """The database's directory does not exist yet: SQLite cannot open it, as if the server were down."""
    home = tmp_path / "db"
    url = f"sqlite:///{home / 'ctid.db'}"
    spool = tmp_path / "spool" / "log.jsonl"
    log = InteractionLog(url, spool, batch_size=4, retry_interval_s=3600)
    await log.start()  # no database: ctid starts anyway
    for event in answered_call("1.1", T0):
        log.record("pbx1", event)
    log.record_gap("pbx1", T0 + 5, T0 + 6)
    await log.flush()
    assert (log.written, log.pending, log.spooled) == (0, 0, 11)
    assert len(spool.read_text().splitlines()) == 11

    for event in answered_call("2.1", T0 + 100):
        log.record("pbx1", event)
    await log.flush()  # still down: the new events queue behind the spool
    assert (log.written, log.spooled) == (0, 21)

    home.mkdir()
    for event in answered_call("3.1", T0 + 200):
        log.record("pbx1", event)
    await log.flush()  # back: the spool first, then the live events
    assert (log.written, log.pending, log.spooled) == (30, 0, 0)
    assert spool.read_text() == ""
    assert sequence(event_ids(url)) == list(range(1, 31))
    assert set(interactions(url)) == {"1.1", "2.1", "3.1"}
    assert load_gaps(url, T0, T0 + 10) == [{"server": "pbx1", "start": T0 + 5, "end": T0 + 6}]
    await log.close()


@pytest.mark.parametrize("how", ["removed", "replaced"])
async def test_a_database_file_removed_or_replaced_under_ctid_is_noticed_and_reopened(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's open connections would write on into the old inode: every later row would be lost."""
    path = tmp_path / "ctid.db"
    url = f"sqlite:///{path}"
    log = InteractionLog(url, tmp_path / "spool.jsonl")
    made: list[str] = []
    log.on_new_database.append(lambda engine: made.append(str(engine.url)))
    await log.start()
    for event in transferred_call("1.1", T0):
        log.record("pbx1", event)
    await log.flush()
    assert set(interactions(url)) == {"1.1"} and len(made) == 1
    backup = tmp_path / "backup.db"
    with sqlite3.connect(path) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # what is still in the write-ahead log too
    for sidecar in (path, path.with_name("ctid.db-wal"), path.with_name("ctid.db-shm")):
        sidecar.unlink(missing_ok=True)
    if how == "replaced":
        shutil.move(backup, path)  # an operator restores yesterday's copy over the live file
    for event in transferred_call("2.1", T0 + 10):
        log.record("pbx1", event)
    await log.flush()
    assert path.exists()
    expected = {"1.1", "2.1"} if how == "replaced" else {"2.1"}
    assert set(interactions(url)) == expected  # written to the file at the path, not the vanished one
    assert len(made) == 2  # other components' tables are made again in the new file
    assert "interaction_log_db_file_changed" in capsys.readouterr().out
    await log.close()


async def test_a_spool_is_replayed_on_start_and_a_second_replay_adds_nothing(tmp_path: Path) -> None:
    """A replay cut short, or a commit whose answer was lost, sends events again: they are stored once."""
    home = tmp_path / "db"
    url = f"sqlite:///{home / 'ctid.db'}"
    down = InteractionLog(url, tmp_path / "spool.jsonl")
    await down.start()
    for n in range(3):
        for event in transferred_call(f"{n}.1", T0 + n):
            down.record("pbx1", event)
    await down.close()  # ctid stops while the database is still away
    shutil.copy(tmp_path / "spool.jsonl", tmp_path / "copy.jsonl")

    home.mkdir()
    up = InteractionLog(url, tmp_path / "spool.jsonl")
    await up.start()
    await up.flush()
    assert (up.written, up.spooled) == (15, 0)
    await up.close()
    again = InteractionLog(url, tmp_path / "copy.jsonl")
    await again.start()
    await again.close()
    assert (again.written, again.spooled) == (0, 0)

    assert sequence(event_ids(url)) == list(range(1, 16))
    assert [s["transfers"] for s in interactions(url).values()] == [1, 1, 1]


async def test_a_line_torn_by_a_crash_is_skipped_and_the_rest_replayed(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    home = tmp_path / "db"
    url = f"sqlite:///{home / 'ctid.db'}"
    down = InteractionLog(url, spool)
    await down.start()
    for event in transferred_call("1.1", T0):
        down.record("pbx1", event)
    await down.close()
    spool.write_text(spool.read_text() + '{"event_id": "torn')

    home.mkdir()
    up = InteractionLog(url, spool)
    await up.start()
    await up.close()
    assert (up.written, up.spooled) == (5, 0)
    assert spool.read_text() == ""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_creates_exactly_the_models_tables(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'ctid.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade_database(url)
    upgrade_database(url)  # at head: nothing to do
    models = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name in LOG_TABLES:
            table.to_metadata(models)
    engine = open_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, models) == []
    engine.dispose()


def test_the_migration_adopts_tables_create_all_made_first(tmp_path: Path) -> None:
    """routing's create_schema runs create_all over every model, the log's included."""
    engine = open_engine(f"sqlite:///{tmp_path / 'ctid.db'}")
    Base.metadata.create_all(engine)
    upgrade_database(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar() == "0003"
    engine.dispose()


async def test_postgres_outage_mid_traffic_loses_and_duplicates_nothing(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    """5,000 events at a steady pace; PostgreSQL stops for half a second in the middle of them."""
    spool = tmp_path / "spool.jsonl"
    log = InteractionLog(postgres_url, spool, batch_size=200, flush_interval_s=0.05, retry_interval_s=0.1)
    await log.start()
    calls = 1000
    seen: dict[str, int] = {}
    running = True

    async def traffic() -> None:
        for n in range(calls):
            for event in transferred_call(f"{n}.1", T0 + n):
                log.record("pbx1", event)
            if n % 4 == 3:
                await asyncio.sleep(0.01)

    async def outage() -> None:
        nonlocal running
        await asyncio.sleep(0.6)
        await asyncio.to_thread(postgres_server.stop)
        running = False
        seen["stopped_at"] = log.written
        for _ in range(500):  # the next batch finds the server gone
            if log.spooled:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        seen["spooled"] = log.spooled
        await asyncio.to_thread(postgres_server.start)
        running = True

    try:
        await asyncio.gather(traffic(), outage())
    finally:
        if not running:
            postgres_server.start()
    await log.flush()

    assert seen["stopped_at"] > 0 and seen["spooled"] > 0, seen  # the outage fell mid-stream
    assert (log.pending, log.spooled, spool.read_text()) == (0, 0, "")
    assert sequence(event_ids(postgres_url)) == list(range(1, 5 * calls + 1))
    summaries = interactions(postgres_url)
    assert len(summaries) == calls
    assert {(s["transfers"], s["disposition"], s["last_queue"]) for s in summaries.values()} == {
        (1, "answered", "sales")
    }
    await log.close()
