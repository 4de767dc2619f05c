"""CSV import of price quotes and cases into the customer book: every row checked as the API checks it,
errors by line number, and all or nothing - one bad row and no row is added."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from ctid.customers.book import Case, Customer, CustomerImportError, ImportResult, Rejection
from ctid.customers.forms import FormError, case_form, quote_form
from ctid.customers.tables import PriceQuote

QUOTE_COLUMNS = (
    "customer",
    "product",
    "price",
    "currency",
    "valid_until",
)  # and optional status, at, agent, user
CASE_COLUMNS = ("customer", "subject")  # and optional kind, status, opened_at
IMPORTED_BY = "import"  # the author of rows whose `user` column is empty or absent


def import_quotes(session: Session, source: str | Path | IO[str], now: float) -> ImportResult:
    """Price quotes from a CSV; `at` (when quoted) defaults to `now`. Added, not committed; nothing is
    added when any row is rejected."""

    def quote(raw: Mapping[str, str], customer: str, at: datetime) -> PriceQuote:
        form = quote_form(raw)
        return PriceQuote(
            customer_id=customer,
            call="",
            agent=raw.get("agent", "").strip()[:64],
            user=raw.get("user", "").strip()[:100] or IMPORTED_BY,
            at=at,
            product=form.product,
            price=form.price,
            currency=form.currency,
            valid_until=form.valid_until,
            status=form.status,
        )

    return _import(session, source, QUOTE_COLUMNS, "at", now, quote)


def import_cases(session: Session, source: str | Path | IO[str], now: float) -> ImportResult:
    """Cases from a CSV, without steps; `opened_at` defaults to `now`, `resolved` ones are closed then.
    Added, not committed; nothing is added when any row is rejected."""

    def case(raw: Mapping[str, str], customer: str, at: datetime) -> Case:
        form = case_form(raw)
        return Case(
            customer_id=customer,
            opened_at=at,
            subject=form.subject,
            kind=form.kind,
            status=form.status,
            closed_at=at if form.status == "resolved" else None,
        )

    return _import(session, source, CASE_COLUMNS, "opened_at", now, case)


def _import(
    session: Session,
    source: str | Path | IO[str],
    required: tuple[str, ...],
    when_column: str,
    now: float,
    build: Callable[[Mapping[str, str], str, datetime], PriceQuote | Case],
) -> ImportResult:
    if isinstance(source, str | Path):
        with open(source, newline="", encoding="utf-8-sig") as handle:
            return _import(session, handle, required, when_column, now, build)
    reader = csv.DictReader(source)
    missing = [col for col in required if col not in (reader.fieldnames or [])]
    if missing:
        raise CustomerImportError(f"CSV lacks column(s): {', '.join(missing)}")
    rows: list[PriceQuote | Case] = []
    rejected: list[Rejection] = []
    known: dict[str, bool] = {}
    default_at = datetime.fromtimestamp(now, UTC)
    for raw in reader:
        line = reader.line_num
        cells = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        customer = cells.get("customer", "")
        if customer not in known:
            known[customer] = bool(customer) and session.get(Customer, customer) is not None
        try:
            if not known[customer]:
                raise FormError({"customer": f"no customer {customer!r}"})
            at = _when(cells.get(when_column, ""), when_column, default_at)
            rows.append(build(cells, customer, at))
        except FormError as exc:
            rejected.append(Rejection(line, "; ".join(f"{k} {v}" for k, v in exc.errors.items())))
    if rejected:
        return ImportResult(created=0, updated=0, rejected=tuple(rejected))
    session.add_all(rows)
    session.flush()
    return ImportResult(created=len(rows), updated=0, rejected=())


def _when(text: str, column: str, default: datetime) -> datetime:
    if not text:
        return default
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise FormError({column: "must be an ISO 8601 date or date and time"}) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
