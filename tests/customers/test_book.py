"""The customer book on SQLite: CSV import, tier recomputation, lookup by phone number and open cases."""

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctid.customers import CaseStep, Lifecycle, Tier
from ctid.customers.book import (
    Case,
    Customer,
    CustomerImportError,
    CustomerPhone,
    SupportCaseStep,
    create_schema,
    import_csv,
    import_csv_text,
    lookup_by_phone,
    open_cases,
    recompute_tiers,
)
from ctid.db import make_engine

ALL_LIFECYCLES = "suspect, prospect, first_time, repeat, client, advocate, lost"
HEADER = "id,name,phones,revenue_12m,tenure_years,cost_to_serve,lifecycle,vip\n"

GOOD = (
    HEADER
    + "c1,Acme Ltd,+44 20 7946 0958;+44-7700-900123,120000.00,6.5,8000,client,yes\n"
    + "c2,Bob Stone,(415) 555-0100,900,0.5,50,first_time,no\n"
    + 'c3,"Carla, Inc",,0,0,0,lost,\n'
)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_good_rows_are_created(session: Session) -> None:
    result = import_csv(session, io.StringIO(GOOD, newline=""))
    assert (result.created, result.updated, result.rejected) == (3, 0, ())
    acme = session.get(Customer, "c1")
    assert acme is not None
    assert acme.revenue_12m == Decimal("120000.00")
    assert acme.lifecycle is Lifecycle.CLIENT and acme.vip and acme.tier is None
    assert [p.number for p in acme.phones] == ["442079460958", "447700900123"]
    carla = session.get(Customer, "c3")
    assert carla is not None and carla.name == "Carla, Inc" and carla.phones == [] and not carla.vip


def test_bad_row_is_rejected_with_its_line_number(session: Session) -> None:
    text = (
        HEADER
        + "c1,Acme,0207 946 0958,100,1,10,client,no\n"
        + "c2,Bob,0207 111 2222,lots,1,10,client,no\n"
        + "c3,Cy,0207 333 4444,100,1,10,sleeping,no\n"
        + "c4,Di,0207 946 0958,100,1,10,client,no\n"
        + "c5,Ed,0207 555 6666,100,1,10,client,no\n"
    )
    result = import_csv_text(session, text)
    assert (result.created, result.updated) == (2, 0)
    assert [(r.line, r.reason) for r in result.rejected] == [
        (3, "revenue_12m is not a number: 'lots'"),
        (4, f"lifecycle 'sleeping' is not one of {ALL_LIFECYCLES}"),
        (5, "phone 2079460958 already belongs to customer c1"),
    ]
    assert sorted(session.scalars(select(Customer.id))) == ["c1", "c5"]


def test_csv_without_a_required_column_is_refused(session: Session) -> None:
    with pytest.raises(CustomerImportError, match="lifecycle"):
        import_csv_text(session, "id,name,phones,revenue_12m,tenure_years,cost_to_serve,vip\n")


def test_reimport_updates_figures_and_phones(session: Session, tmp_path: Path) -> None:
    import_csv_text(session, GOOD)
    session.add(Case(customer_id="c1", opened_at=datetime(2024, 1, 1, tzinfo=UTC), subject="billing"))
    session.commit()
    update = tmp_path / "update.csv"
    update.write_text(
        HEADER
        + "c1,Acme Group,+44 20 7946 0958;+1 212 555 0199,150000,7,9000,advocate,1\n"
        + "c4,Dee,020 3000 4000,10,0,1,prospect,no\n",
        encoding="utf-8",
    )
    result = import_csv(session, update)
    assert (result.created, result.updated, result.rejected) == (1, 1, ())
    session.commit()
    acme = session.get(Customer, "c1")
    assert acme is not None
    assert acme.name == "Acme Group" and acme.lifecycle is Lifecycle.ADVOCATE
    assert acme.revenue_12m == Decimal("150000.00")
    assert [p.number for p in acme.phones] == ["12125550199", "442079460958"]
    assert len(acme.cases) == 1
    assert session.get(CustomerPhone, "447700900123") is None


@pytest.mark.parametrize(
    "dialled",
    [
        "+44 20 7946 0958",
        "0044 20 7946 0958",
        "020 7946 0958",
        "020-7946-0958",
        "442079460958",
        " 2079460958",
    ],
)
def test_lookup_finds_the_customer_whatever_the_formatting(session: Session, dialled: str) -> None:
    import_csv_text(session, GOOD)
    record = lookup_by_phone(session, dialled)
    assert record is not None and record.id == "c1"


def test_lookup_of_a_us_number_with_and_without_country_code(session: Session) -> None:
    import_csv_text(session, GOOD)
    for dialled in ("+1 415 555 0100", "1-415-555-0100", "415.555.0100"):
        record = lookup_by_phone(session, dialled)
        assert record is not None and record.id == "c2"


def test_lookup_of_unknown_short_or_empty_numbers_gives_none(session: Session) -> None:
    import_csv_text(session, GOOD)
    assert lookup_by_phone(session, "+33 1 23 45 67 89") is None
    assert lookup_by_phone(session, "0958") is None
    assert lookup_by_phone(session, "anonymous") is None


def test_ambiguous_tail_match_gives_none(session: Session) -> None:
    import_csv_text(
        session,
        HEADER + "c1,A,+44 20 7946 0958,1,1,1,client,no\nc2,B,+61 20 7946 0958,1,1,1,client,no\n",
    )
    assert lookup_by_phone(session, "020 7946 0958") is None
    record = lookup_by_phone(session, "+61 20 7946 0958")
    assert record is not None and record.id == "c2"


def test_record_carries_value_tier_and_open_complaints(session: Session) -> None:
    import_csv_text(session, GOOD)
    opened = datetime(2024, 5, 1, tzinfo=UTC)
    session.add_all(
        [
            Case(customer_id="c1", opened_at=opened, subject="late delivery"),
            Case(customer_id="c1", opened_at=opened, subject="wrong invoice"),
            Case(customer_id="c1", opened_at=opened, closed_at=opened, subject="closed one"),
        ]
    )
    recompute_tiers(session)
    record = lookup_by_phone(session, "07700 900123")
    assert record is not None
    assert (record.tier, record.vip, record.open_complaints) == (Tier.A, True, 2)
    assert record.value.revenue_12m == Decimal("120000.00")
    assert record.value.open_complaints == 2 and record.value.lifecycle is Lifecycle.CLIENT


def test_recompute_tiers_counts_and_stores_tiers(session: Session) -> None:
    rows = [f"c{i:03d},Customer {i},+1 555 {i:07d},{i * 100},1,0,client,no\n" for i in range(100)]
    assert import_csv_text(session, HEADER + "".join(rows)).created == 100
    assert recompute_tiers(session) == {Tier.A: 5, Tier.B: 15, Tier.C: 80}
    session.commit()
    stored = {cid: tier for cid, tier in session.execute(select(Customer.id, Customer.tier))}
    assert {cid for cid, t in stored.items() if t is Tier.A} == {f"c{i:03d}" for i in range(95, 100)}
    assert recompute_tiers(session, top_a=0.1, top_b=0.0) == {Tier.A: 10, Tier.B: 0, Tier.C: 90}


def test_recompute_tiers_on_an_empty_book(session: Session) -> None:
    assert recompute_tiers(session) == {Tier.A: 0, Tier.B: 0, Tier.C: 0}


def test_open_cases_come_oldest_first_with_their_steps_in_order(session: Session) -> None:
    import_csv_text(session, GOOD)
    day = datetime(2024, 5, 1, tzinfo=UTC)
    late = Case(customer_id="c1", opened_at=day.replace(day=3), subject="late delivery")
    late.steps = [
        SupportCaseStep(at=day.replace(day=5), who="bob", done="refund approved"),
        SupportCaseStep(at=day.replace(day=4), who="ann", done="asked the carrier", next_step="call back"),
    ]
    invoice = Case(customer_id="c1", opened_at=day, subject="wrong invoice")
    closed = Case(customer_id="c1", opened_at=day, closed_at=day, subject="closed one")
    other = Case(customer_id="c2", opened_at=day, subject="someone else's")
    session.add_all([late, invoice, closed, other])
    session.commit()
    session.expunge_all()  # read back from the database, not from the session's objects
    cases = open_cases(session, "c1")
    assert [(c.subject, c.customer, c.opened_at) for c in cases] == [
        ("wrong invoice", "c1", day),
        ("late delivery", "c1", day.replace(day=3)),
    ]
    assert cases[0].steps == ()
    assert cases[1].steps == (
        CaseStep(day.replace(day=4), "ann", "asked the carrier", "call back"),
        CaseStep(day.replace(day=5), "bob", "refund approved", ""),
    )
    assert open_cases(session, "c3") == ()


def test_deleting_a_customer_deletes_its_cases_and_their_steps(session: Session) -> None:
    import_csv_text(session, GOOD)
    case = Case(customer_id="c2", opened_at=datetime(2024, 5, 1, tzinfo=UTC), subject="billing")
    case.steps = [SupportCaseStep(at=case.opened_at, who="ann", done="noted")]
    session.add(case)
    session.flush()
    session.delete(session.get(Customer, "c2"))
    session.flush()
    assert session.scalars(select(SupportCaseStep)).all() == []
    assert session.scalars(select(Case)).all() == []
