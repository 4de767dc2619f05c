"""CSV import of price quotes and cases, as functions and as `ctid customers import-quotes/import-cases`:
checked row by row, errors with line numbers, and nothing imported when one row is bad."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctid.cli import main
from ctid.customers.book import Case, CustomerImportError, Rejection, create_schema, import_csv_text
from ctid.customers.cases import CaseKind, CaseStatus
from ctid.customers.history import customer_history
from ctid.customers.imports import import_cases, import_quotes
from ctid.customers.tables import PriceQuote, QuoteStatus
from ctid.db import make_engine
from tests.customers.rig import CUSTOMERS_CSV

T0 = 1_795_392_000.0
QUOTES = (
    "customer,product,price,currency,valid_until,status,at,agent,user\n"
    "c1,router,99.90,EUR,2027-01-31,offered,2026-11-01T10:00:00,a1,ann\n"
    "c1,switch,10,GBP,2027-02-01,accepted,,,\n"
)
CASES = (
    "customer,kind,subject,status,opened_at\n"
    "c1,complaint,late delivery,in_progress,2026-11-02\n"
    "c2,,billing,resolved,\n"
)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    with Session(engine) as s:
        import_csv_text(s, CUSTOMERS_CSV)
        yield s
    engine.dispose()


def _file(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


def test_quotes_are_imported_with_their_authors(session: Session) -> None:
    result = import_quotes(session, _file(QUOTES), T0)
    assert (result.created, result.rejected) == (2, ())
    quotes = customer_history(session, "c1").quotes
    assert [(q.product, q.price, q.currency, q.status, q.user, q.agent) for q in quotes] == [
        ("switch", Decimal("10.00"), "GBP", QuoteStatus.ACCEPTED, "import", ""),  # at: now, the newest
        ("router", Decimal("99.90"), "EUR", QuoteStatus.OFFERED, "ann", "a1"),
    ]


def test_cases_are_imported_and_a_resolved_one_is_closed(session: Session) -> None:
    result = import_cases(session, _file(CASES), T0)
    assert (result.created, result.rejected) == (2, ())
    cases = {c.subject: c for c in session.scalars(select(Case))}
    late, billing = cases["late delivery"], cases["billing"]
    assert (late.kind, late.status, late.closed_at) == (CaseKind.COMPLAINT, CaseStatus.IN_PROGRESS, None)
    assert billing.status is CaseStatus.RESOLVED and billing.closed_at is not None


def test_a_broken_row_is_reported_by_line_and_nothing_is_imported(session: Session) -> None:
    broken = QUOTES + "c9,x,1,EUR,2027-01-01,,,,\nc1,x,lots,euro,someday,sold,,,\n"
    result = import_quotes(session, _file(broken), T0)
    assert result.created == 0
    assert [r.line for r in result.rejected] == [4, 5]
    assert result.rejected[0] == Rejection(4, "customer no customer 'c9'")
    assert all(word in result.rejected[1].reason for word in ("price", "currency", "valid_until", "status"))
    assert session.scalars(select(PriceQuote)).all() == []
    bad_case = import_cases(session, _file(CASES + "c1,rant,,open,yesterday\n"), T0)
    assert [r.line for r in bad_case.rejected] == [4]
    assert session.scalars(select(Case)).all() == []


def test_a_csv_without_the_required_columns_is_refused(session: Session) -> None:
    with pytest.raises(CustomerImportError, match="price"):
        import_quotes(session, _file("customer,product\nc1,x\n"), T0)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ctid.yaml"
    path.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\n"
        f"database: sqlite:///{tmp_path}/ctid.db\n"
    )
    return path


def test_the_command_line_imports_all_or_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "customers.csv").write_text(CUSTOMERS_CSV)
    (tmp_path / "quotes.csv").write_text(QUOTES)
    (tmp_path / "cases.csv").write_text(CASES + "c3,inquiry,who is c3,open,\n")
    run = ["-c", str(config)]
    assert main(["customers", "import", str(tmp_path / "customers.csv"), *run]) == 0
    assert main(["customers", "import-quotes", str(tmp_path / "quotes.csv"), *run]) == 0
    assert "2 created" in capsys.readouterr().out
    assert main(["customers", "import-cases", str(tmp_path / "cases.csv"), *run]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'cases.csv'}:4: customer no customer 'c3'" in err and "nothing imported" in err
    assert main(["customers", "import-cases", str(tmp_path / "missing.csv"), *run]) == 2
    engine = make_engine(f"sqlite:///{tmp_path}/ctid.db")
    with Session(engine) as session:
        assert len(customer_history(session, "c1").quotes) == 2
        assert session.scalars(select(Case)).all() == []
    engine.dispose()
