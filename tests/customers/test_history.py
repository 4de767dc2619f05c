"""A customer's history in the book: what `customer_history` gives and in which order, each write stored
with its author and time and told as an event, and the additive upgrade of an older support_case table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from ctid.customers import Lifecycle
from ctid.customers.book import Case, Customer, create_schema, import_csv_text, open_cases
from ctid.customers.cases import CaseKind, CaseStatus
from ctid.customers.forms import CaseForm, LifecycleForm, NoteForm, QuoteForm, StepForm
from ctid.customers.history import UnknownCustomer, customer_history
from ctid.customers.tables import CustomerCall, CustomerNote, LifecycleChange, PriceQuote, QuoteStatus
from ctid.customers.writes import (
    Author,
    UnknownCase,
    add_case_step,
    add_note,
    open_case,
    record_quote,
    set_lifecycle,
)
from ctid.db import make_engine
from ctid.state import domain as d
from tests.customers.rig import CUSTOMERS_CSV

T0 = 1_795_392_000.0  # 2026-11-23 00:00 UTC
ANN = Author("ann", "a1")


@pytest.fixture
def session() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    with Session(engine) as s:
        import_csv_text(s, CUSTOMERS_CSV)
        s.commit()
        yield s
    engine.dispose()


def _call(linkedid: str, at: float, agent: str = "a1", customer: str = "c1") -> CustomerCall:
    return CustomerCall(
        customer_id=customer,
        linkedid=linkedid,
        server="pbx1",
        arrived_at=at,
        queue="sales",
        agent=agent,
        wait_s=3.0,
        talk_s=60.0,
        disposition="resolved",
    )


def _quote(product: str, price: str = "10.00") -> QuoteForm:
    return QuoteForm(
        product, Decimal(price), "EUR", datetime(2027, 1, 1, tzinfo=UTC), QuoteStatus.OFFERED, ""
    )


def test_a_history_holds_identity_figures_cases_calls_quotes_and_notes_in_order(session: Session) -> None:
    session.add_all([_call("L1", T0), _call("L2", T0 + 3600), _call("L0", T0 - 7200, customer="c2")])
    add_note(session, "c1", NoteForm("asked about the invoice", "L1"), ANN, T0 + 100)
    add_note(session, "c1", NoteForm("wants a call on Monday", ""), ANN, T0 + 200)
    record_quote(session, "c1", _quote("router", "99.90"), ANN, T0 + 300)
    record_quote(session, "c1", _quote("switch"), ANN, T0 + 400)
    case = open_case(
        session, "c1", CaseForm(CaseKind.COMPLAINT, "late delivery", CaseStatus.OPEN, ""), ANN, T0
    )
    add_case_step(
        session,
        "c1",
        case.case_id,
        StepForm("asked the carrier", "call back", CaseStatus.IN_PROGRESS, ""),
        ANN,
        T0 + 10,
    )
    done = open_case(
        session, "c1", CaseForm(CaseKind.INQUIRY, "opening hours", CaseStatus.RESOLVED, ""), ANN, T0
    )
    session.commit()

    history = customer_history(session, "c1")

    assert (history.id, history.name, history.phones) == ("c1", "Acme Ltd", ("442079460958",))
    assert (history.lifecycle, history.win_back, history.vip) == (Lifecycle.CLIENT, False, True)
    assert history.revenue_12m == Decimal("120000.00") and history.open_complaints == 1
    assert [c.linkedid for c in history.calls] == ["L2", "L1"]  # newest first, c2's call not among them
    assert [n.text for n in history.calls[1].notes] == ["asked about the invoice"]
    assert [n.text for n in history.notes] == ["wants a call on Monday"]
    assert [(q.product, q.price, q.user, q.agent) for q in history.quotes] == [
        ("switch", Decimal("10.00"), "ann", "a1"),
        ("router", Decimal("99.90"), "ann", "a1"),
    ]
    assert [c.id for c in history.cases] == [case.case_id]  # the resolved inquiry is not open
    assert done.case_id not in [c.id for c in history.cases]
    assert [(s.who, s.done, s.next_step, s.status) for s in history.cases[0].steps] == [
        ("ann", "asked the carrier", "call back", "in_progress")
    ]
    assert history.cases[0].status is CaseStatus.IN_PROGRESS
    assert history.surveys == () and history.callbacks == ()
    as_json = history.to_dict()
    assert as_json["quotes"][1]["price"] == "99.90" and as_json["quotes"][1]["currency"] == "EUR"
    assert as_json["calls"][1]["arrived_at"] == "2026-11-23T00:00:00+00:00"
    assert as_json["value"]["open_complaints"] == 1 and as_json["win_back"] is False
    assert as_json["surveys"] == [] and as_json["callbacks"] == []


def test_past_calls_are_bounded_to_the_newest_fifty(session: Session) -> None:
    session.add_all([_call(f"L{i}", T0 + i) for i in range(60)])
    session.commit()
    calls = customer_history(session, "c1").calls
    assert len(calls) == 50 and calls[0].linkedid == "L59" and calls[-1].linkedid == "L10"


def test_a_lost_customer_carries_the_win_back_marker(session: Session) -> None:
    history = customer_history(session, "c2")
    assert history.lifecycle is Lifecycle.LOST and history.win_back
    assert history.to_dict()["win_back"] is True


def test_an_unknown_customer_has_no_history(session: Session) -> None:
    with pytest.raises(UnknownCustomer):
        customer_history(session, "nobody")


def test_each_write_is_stored_with_its_author_and_time_and_told_as_an_event(session: Session) -> None:
    at = datetime.fromtimestamp(T0, UTC)
    note = add_note(session, "c1", NoteForm("secret text", "L9"), ANN, T0)
    assert note == d.NoteAdded(T0, "", "c1", "L9", "a1", "ann", note.note_id)
    stored = session.get(CustomerNote, note.note_id)
    assert stored is not None and (stored.user, stored.agent, stored.call) == ("ann", "a1", "L9")
    assert stored.at.replace(tzinfo=UTC) == at
    assert "secret text" not in repr(note.to_dict())  # the log keeps the id, not the text

    quote = record_quote(session, "c1", _quote("router"), Author("sue"), T0)
    assert (quote.kind, quote.user, quote.agent, quote.status) == ("QuoteRecorded", "sue", "", "offered")
    assert session.get(PriceQuote, quote.quote_id) is not None

    stage = set_lifecycle(session, "c1", LifecycleForm(Lifecycle.LOST, "L9"), ANN, T0 + 5)
    assert (stage.previous, stage.stage) == ("client", "lost")
    change = session.scalars(select(LifecycleChange)).one()
    assert (change.previous, change.stage, change.user, change.call) == (
        Lifecycle.CLIENT,
        Lifecycle.LOST,
        "ann",
        "L9",
    )
    customer = session.get(Customer, "c1")
    assert customer is not None and customer.lifecycle is Lifecycle.LOST


def test_a_step_sets_the_case_status_and_resolving_closes_it(session: Session) -> None:
    opened = open_case(session, "c1", CaseForm(CaseKind.COMPLAINT, "broken", CaseStatus.OPEN, ""), ANN, T0)
    assert (opened.case_kind, opened.status) == ("complaint", "open")
    step = add_case_step(
        session, "c1", opened.case_id, StepForm("replaced it", "", CaseStatus.RESOLVED, ""), ANN, T0 + 60
    )
    assert step.status == "resolved"
    case = session.get(Case, opened.case_id)
    assert case is not None and case.status is CaseStatus.RESOLVED and case.closed_at is not None
    assert open_cases(session, "c1") == ()
    add_case_step(
        session,
        "c1",
        opened.case_id,
        StepForm("it broke again", "", CaseStatus.IN_PROGRESS, ""),
        ANN,
        T0 + 90,
    )
    assert case.closed_at is None and [c.id for c in open_cases(session, "c1")] == [opened.case_id]


def test_a_step_on_another_customers_case_is_unknown(session: Session) -> None:
    opened = open_case(session, "c1", CaseForm(CaseKind.REQUEST, "upgrade", CaseStatus.OPEN, ""), ANN, T0)
    with pytest.raises(UnknownCase):
        add_case_step(session, "c2", opened.case_id, StepForm("x", "", CaseStatus.OPEN, ""), ANN, T0)


# ---- the additive upgrade ------------------------------------------------------------------------------

OLD_SCHEMA = (
    "CREATE TABLE customer (id VARCHAR(64) PRIMARY KEY, name VARCHAR(200) NOT NULL, lifecycle VARCHAR(16) "
    "NOT NULL, revenue_12m NUMERIC(14, 2) NOT NULL, tenure_years FLOAT NOT NULL, "
    "cost_to_serve NUMERIC(14, 2) NOT NULL, vip BOOLEAN NOT NULL, tier VARCHAR(1))",
    "CREATE TABLE support_case (id {pk}, customer_id VARCHAR(64) NOT NULL REFERENCES customer(id) "
    "ON DELETE CASCADE, opened_at TIMESTAMP NOT NULL, closed_at TIMESTAMP, subject VARCHAR(200) NOT NULL)",
    "CREATE TABLE support_case_step (id {pk}, case_id INTEGER NOT NULL REFERENCES "
    "support_case(id) ON DELETE CASCADE, at TIMESTAMP NOT NULL, who VARCHAR(100) NOT NULL, done VARCHAR(500) "
    "NOT NULL, next_step VARCHAR(500) NOT NULL)",
    "INSERT INTO customer VALUES ('c1', 'Acme', 'client', 1, 1, 1, false, NULL)",
    "INSERT INTO support_case (customer_id, opened_at, closed_at, subject) "
    "VALUES ('c1', '2024-05-01 00:00:00', NULL, 'still open')",
    "INSERT INTO support_case (customer_id, opened_at, closed_at, subject) "
    "VALUES ('c1', '2024-05-01 00:00:00', '2024-05-02 00:00:00', 'closed')",
    "INSERT INTO support_case_step (case_id, at, who, done, next_step) "
    "SELECT id, '2024-05-01 00:00:00', 'ann', 'noted', '' FROM support_case WHERE subject = 'still open'",
)


def _upgrade_an_old_book(engine: Engine) -> None:
    """The tables as ctid created them before cases had a kind and a status, then today's create_schema."""
    pk = "SERIAL PRIMARY KEY" if engine.dialect.name == "postgresql" else "INTEGER PRIMARY KEY"
    with engine.begin() as connection:
        for statement in OLD_SCHEMA:
            connection.execute(text(statement.replace("{pk}", pk)))
    create_schema(engine)
    create_schema(engine)  # a second run finds nothing to add
    columns = {c["name"] for c in inspect(engine).get_columns("support_case")}
    assert {"kind", "status"} <= columns
    assert "status" in {c["name"] for c in inspect(engine).get_columns("support_case_step")}
    with Session(engine) as session:
        cases = {c.subject: (c.kind, c.status) for c in session.scalars(select(Case))}
        assert cases == {
            "still open": (CaseKind.COMPLAINT, CaseStatus.OPEN),
            "closed": (CaseKind.COMPLAINT, CaseStatus.RESOLVED),
        }
        [still_open] = open_cases(session, "c1")
        assert [(s.who, s.status) for s in still_open.steps] == [("ann", "")]
        add_case_step(
            session, "c1", still_open.id, StepForm("called", "", CaseStatus.WAITING_FOR_CUSTOMER, ""), ANN, T0
        )
        session.commit()
        assert open_cases(session, "c1")[0].status is CaseStatus.WAITING_FOR_CUSTOMER


def test_an_older_support_case_table_gains_its_columns_on_sqlite() -> None:
    engine = make_engine("sqlite://")
    try:
        _upgrade_an_old_book(engine)
    finally:
        engine.dispose()


def test_an_older_support_case_table_gains_its_columns_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        _upgrade_an_old_book(engine)
    finally:
        engine.dispose()


def test_times_come_back_in_utc(session: Session) -> None:
    add_note(session, "c1", NoteForm("n", ""), ANN, T0)
    session.commit()
    assert customer_history(session, "c1").notes[0].at == datetime(2026, 11, 23, tzinfo=UTC)


def test_the_interaction_log_keeps_each_write_without_its_text(session: Session) -> None:
    from reports.log import event_row

    opened = open_case(session, "c1", CaseForm(CaseKind.COMPLAINT, "s", CaseStatus.OPEN, "L1"), ANN, T0)
    note = add_note(session, "c1", NoteForm("private words", "L1"), ANN, T0)
    stage = set_lifecycle(session, "c1", LifecycleForm(Lifecycle.LOST, ""), ANN, T0)
    for event in (opened, note, stage):
        row = event_row("customers", event)
        assert (row["server"], row["call_id"], row["agent"], row["kind"]) == (
            "customers",
            "",
            "a1",
            event.kind,
        )
        assert row["data"]["customer"] == "c1" and row["data"]["user"] == "ann"
        assert "private words" not in json.dumps(row)
    assert event_row("customers", opened)["data"]["case_kind"] == "complaint"
    assert event_row("customers", stage)["data"]["stage"] == "lost"


def test_only_open_complaints_count_for_the_callers_lookup(session: Session) -> None:
    from ctid.customers.book import lookup_by_phone

    open_case(session, "c1", CaseForm(CaseKind.INQUIRY, "hours", CaseStatus.OPEN, ""), ANN, T0)
    record = lookup_by_phone(session, "+44 20 7946 0958")
    assert record is not None and record.open_complaints == 0
    open_case(session, "c1", CaseForm(CaseKind.COMPLAINT, "outage", CaseStatus.OPEN, ""), ANN, T0)
    record = lookup_by_phone(session, "+44 20 7946 0958")
    assert record is not None and record.open_complaints == 1
