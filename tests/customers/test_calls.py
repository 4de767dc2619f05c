"""Customers' past calls: folded from a simulated call's bus events into `customer_calls` rows, written by
the writer, and kept in memory through a database outage until they are written."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ctid.customers.book import create_schema
from ctid.customers.calls import CallFolder, CallRow, CustomerCallWriter
from ctid.customers.tables import CustomerCall
from ctid.db import make_engine
from ctid.state import domain as d
from ctid.tooling.pgtemp import PostgresServer
from tests.customers.rig import customer_call

T0 = 1_795_392_000.0
AGENTS = {"PJSIP/1001": "a1", "PJSIP/1002": "a2"}


def _folder() -> CallFolder:
    return CallFolder(lambda device: AGENTS.get(device, device))


def _fold(folder: CallFolder, events: list[d.DomainEvent], server: str = "pbx1") -> list[CallRow]:
    return [row for event in events for row in folder.apply(server, event)]


def test_a_customers_call_gives_one_row_when_it_ends() -> None:
    folder = _folder()
    events = customer_call("L1", "c1", "PJSIP/1001", T0, wait_s=12.0, talk_s=90.0)
    assert _fold(folder, events[:-1]) == []
    assert folder.customers_of("a1") == {"c1"} and folder.customers_of("a2") == set()
    assert _fold(folder, events[-1:]) == [CallRow("c1", "L1", "pbx1", T0, "sales", "a1", 12.0, 90.0)]
    assert folder.customers_of("a1") == set()
    assert folder.took("L1", "a1") == (True, "c1") and folder.took("L1", "a2") == (False, "c1")


def test_a_transferred_call_gives_a_row_per_agent() -> None:
    folder = _folder()
    first = customer_call("L2", "c1", "PJSIP/1001", T0, wait_s=5.0, talk_s=30.0)[:-1]
    second = [
        d.CallConnected(T0 + 40, "L2", "PJSIP/1002", "PJSIP/1002-1", "support", 5.0),
        d.CallEnded(T0 + 100, "L2", 16, "caller", "answered"),
    ]
    rows = _fold(folder, first + second)
    assert [(r.agent, r.queue, r.talk_s) for r in rows] == [("a1", "sales", 30.0), ("a2", "support", 60.0)]


def test_an_unanswered_call_gives_a_row_without_an_agent_and_a_call_with_no_customer_none() -> None:
    folder = _folder()
    events = customer_call("L3", "c2", "PJSIP/1001", T0)
    abandoned = [*events[:3], d.CallEnded(T0 + 30, "L3", 16, "caller", "abandoned")]
    assert [(r.customer_id, r.agent, r.wait_s, r.talk_s) for r in _fold(folder, abandoned)] == [
        ("c2", "", 30.0, 0.0)
    ]
    anonymous = [e for e in customer_call("L4", "c1", "PJSIP/1001", T0) if not isinstance(e, d.CallVariable)]
    assert _fold(folder, anonymous) == []
    assert folder.took("L4", "a1") == (True, "")  # its disposition is still the agent's to give


def test_calls_on_two_servers_with_the_same_linkedid_stay_apart() -> None:
    folder = _folder()
    a = customer_call("L5", "c1", "PJSIP/1001", T0)
    b = customer_call("L5", "c2", "PJSIP/1002", T0)
    rows = _fold(folder, a[:3], "pbx1") + _fold(folder, b[:3], "pbx2")
    rows += _fold(folder, a[3:], "pbx1") + _fold(folder, b[3:], "pbx2")
    assert [(r.server, r.customer_id, r.agent) for r in rows] == [("pbx1", "c1", "a1"), ("pbx2", "c2", "a2")]


def _stored(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.scalars(select(CustomerCall).order_by(CustomerCall.id))
        return [(r.linkedid, r.customer_id, r.agent) for r in rows]


async def test_rows_wait_in_memory_while_sqlite_is_away(tmp_path: Path) -> None:
    away = tmp_path / "not-yet"  # SQLite cannot open a file in a directory that does not exist
    engine = make_engine(f"sqlite:///{away}/ctid.db")
    writer = CustomerCallWriter(engine)
    writer.add(_fold(_folder(), customer_call("L1", "c1", "PJSIP/1001", T0)))
    assert not await writer.flush()
    writer.add(_fold(_folder(), customer_call("L2", "c1", "PJSIP/1002", T0 + 600)))
    assert [r.linkedid for r in writer.unwritten()] == ["L1", "L2"]
    away.mkdir()
    create_schema(engine)  # the database is back
    assert await writer.flush()
    assert writer.unwritten() == []
    assert _stored(engine) == [("L1", "c1", "a1"), ("L2", "c1", "a2")]
    engine.dispose()


async def test_rows_wait_in_memory_while_postgresql_is_down(postgres_server: PostgresServer) -> None:
    engine = make_engine(postgres_server.create_database())
    create_schema(engine)
    writer = CustomerCallWriter(engine)
    postgres_server.stop()
    try:
        writer.add(_fold(_folder(), customer_call("L1", "c1", "PJSIP/1001", T0)))
        assert not await writer.flush()
        assert [r.linkedid for r in writer.unwritten()] == ["L1"]
    finally:
        postgres_server.start()
    # a pooled connection that died with the server fails one more attempt; the rows stay for the next
    assert await writer.flush() or await writer.flush()
    assert _stored(engine) == [("L1", "c1", "a1")]
    engine.dispose()


async def test_the_writer_task_writes_what_is_pending_before_it_closes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/ctid.db")
    create_schema(engine)
    writer = CustomerCallWriter(engine, flush_interval_s=0.01)
    writer.start()
    writer.add(_fold(_folder(), customer_call("L1", "c1", "PJSIP/1001", T0)))
    await writer.close()
    assert _stored(engine) == [("L1", "c1", "a1")]
    engine.dispose()
