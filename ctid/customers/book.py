"""The customer book in SQL: customers, their phones and cases, CSV import, tier recomputation and lookup.

Phone numbers are stored and matched by the rule in `ctid.customers.phones`. If a tail match points at
more than one customer the lookup answers None rather than screen-pop the wrong person.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from ctid.customers.cases import CaseKind, CaseRecord, CaseStatus, CaseStep
from ctid.customers.identify import Lookup
from ctid.customers.phones import MIN_SUFFIX_DIGITS, numbers_match, phone_key
from ctid.customers.tables import str_enum
from ctid.customers.value import (
    DEFAULT_WEIGHTS,
    CustomerRecord,
    CustomerValue,
    Lifecycle,
    Tier,
    ValueWeights,
    assign_tiers,
    value_score,
)
from ctid.db import Base

# Indexed tail of every stored number; a lookup narrows candidates with it, then checks the full rule.
_KEY_DIGITS = MIN_SUFFIX_DIGITS
_MONEY = Numeric(14, 2)
CSV_COLUMNS = ("id", "name", "phones", "revenue_12m", "tenure_years", "cost_to_serve", "lifecycle", "vip")


def key_tail(number: str) -> str:
    """The indexed tail of a stored phone key."""
    return number[-_KEY_DIGITS:]


class Customer(Base):
    """A customer account with the figures its value tier is computed from."""

    __tablename__ = "customer"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lifecycle: Mapped[Lifecycle] = mapped_column(str_enum(Lifecycle, 16))
    revenue_12m: Mapped[Decimal] = mapped_column(_MONEY)
    tenure_years: Mapped[float] = mapped_column(Float)
    cost_to_serve: Mapped[Decimal] = mapped_column(_MONEY)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    # Written only by recompute_tiers; None until the first run after the customer was created.
    tier: Mapped[Tier | None] = mapped_column(str_enum(Tier, 1), nullable=True)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerPhone.number"
    )
    cases: Mapped[list[Case]] = relationship(back_populates="customer", cascade="all, delete-orphan")


class CustomerPhone(Base):
    """A phone number a customer calls from, stored as its `phone_key`."""

    __tablename__ = "customer_phone"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    match_key: Mapped[str] = mapped_column(String(_KEY_DIGITS), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Case(Base):
    """A service case; one still open (closed_at None: not resolved) counts as an open complaint."""

    __tablename__ = "support_case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    subject: Mapped[str] = mapped_column(String(200))
    kind: Mapped[CaseKind] = mapped_column(str_enum(CaseKind, 16), default=CaseKind.COMPLAINT)
    status: Mapped[CaseStatus] = mapped_column(str_enum(CaseStatus, 24), default=CaseStatus.OPEN)

    customer: Mapped[Customer] = relationship(back_populates="cases")
    steps: Mapped[list[SupportCaseStep]] = relationship(back_populates="case", cascade="all, delete-orphan")


class SupportCaseStep(Base):
    """One step taken on a case: when, by whom, what was done, and the next step ("" when none)."""

    __tablename__ = "support_case_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("support_case.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    who: Mapped[str] = mapped_column(String(100))
    done: Mapped[str] = mapped_column(String(500))
    next_step: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(24), default="")  # the case's status after it ('' in old rows)

    case: Mapped[Case] = relationship(back_populates="steps")


# Columns added to tables that older ctid versions created: (table, column, DDL type and default).
_ADDED_COLUMNS = (
    ("support_case", "kind", "VARCHAR(16) NOT NULL DEFAULT 'complaint'"),
    ("support_case", "status", "VARCHAR(24) NOT NULL DEFAULT 'open'"),
    ("support_case_step", "status", "VARCHAR(24) NOT NULL DEFAULT ''"),
)


def create_schema(engine: Engine) -> None:
    """Create every ctid table that does not exist yet, and add the columns older versions' tables lack
    (a case closed before cases had a status is `resolved`)."""
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        inspector = inspect(connection)
        for table, column, ddl in _ADDED_COLUMNS:
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
                if (table, column) == ("support_case", "status"):
                    connection.execute(
                        text("UPDATE support_case SET status = 'resolved' WHERE closed_at IS NOT NULL")
                    )
                inspector.clear_cache()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A CSV row that was not imported: its line number in the file (header is line 1) and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Outcome of `import_csv`."""

    created: int
    updated: int
    rejected: tuple[Rejection, ...]


class CustomerImportError(ValueError):
    """The CSV as a whole cannot be imported (missing columns); row problems are Rejections instead."""


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    name: str
    phones: tuple[str, ...]
    revenue_12m: Decimal
    tenure_years: float
    cost_to_serve: Decimal
    lifecycle: Lifecycle
    vip: bool


_TRUE = frozenset({"1", "true", "yes", "y"})
_FALSE = frozenset({"", "0", "false", "no", "n"})


def _money(text: str, column: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{column} is not a number: {text!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{column} is not a finite number: {text!r}")
    return amount.quantize(Decimal("0.01"))


def _parse_row(raw: Mapping[str, str | None]) -> _Row:
    cells = {col: (raw.get(col) or "").strip() for col in CSV_COLUMNS}
    if not cells["id"]:
        raise ValueError("id is empty")
    if len(cells["id"]) > 64:
        raise ValueError("id is longer than 64 characters")
    if not cells["name"]:
        raise ValueError("name is empty")
    phones: list[str] = []
    for part in cells["phones"].split(";"):
        if not part.strip():
            continue
        number = phone_key(part)
        if not number or len(number) > 32:
            raise ValueError(f"phone is not a usable number: {part.strip()!r}")
        if number not in phones:
            phones.append(number)
    try:
        tenure = float(cells["tenure_years"])
    except ValueError:
        raise ValueError(f"tenure_years is not a number: {cells['tenure_years']!r}") from None
    if not 0 <= tenure < float("inf"):
        raise ValueError(f"tenure_years must be a non-negative number: {cells['tenure_years']!r}")
    try:
        lifecycle = Lifecycle(cells["lifecycle"].lower())
    except ValueError:
        allowed = ", ".join(lc.value for lc in Lifecycle)
        raise ValueError(f"lifecycle {cells['lifecycle']!r} is not one of {allowed}") from None
    vip_text = cells["vip"].lower()
    if vip_text not in _TRUE | _FALSE:
        raise ValueError(f"vip is not a yes/no value: {cells['vip']!r}")
    return _Row(
        id=cells["id"],
        name=cells["name"],
        phones=tuple(phones),
        revenue_12m=_money(cells["revenue_12m"], "revenue_12m"),
        tenure_years=tenure,
        cost_to_serve=_money(cells["cost_to_serve"], "cost_to_serve"),
        lifecycle=lifecycle,
        vip=vip_text in _TRUE,
    )


def _phone_owner_conflict(session: Session, row: _Row) -> str | None:
    for number in row.phones:
        owner = session.execute(
            select(CustomerPhone.customer_id).where(CustomerPhone.number == number)
        ).scalar_one_or_none()
        if owner is not None and owner != row.id:
            return f"phone {number} already belongs to customer {owner}"
    return None


def _apply_row(customer: Customer, row: _Row) -> None:
    customer.name = row.name
    customer.lifecycle = row.lifecycle
    customer.revenue_12m = row.revenue_12m
    customer.tenure_years = row.tenure_years
    customer.cost_to_serve = row.cost_to_serve
    customer.vip = row.vip
    # Keep phones that stay, so an unchanged number is neither deleted nor re-inserted.
    wanted = set(row.phones)
    customer.phones = [p for p in customer.phones if p.number in wanted]
    kept = {p.number for p in customer.phones}
    customer.phones.extend(
        CustomerPhone(number=n, match_key=key_tail(n)) for n in row.phones if n not in kept
    )


def import_csv(session: Session, path_or_file: str | Path | IO[str]) -> ImportResult:
    """Create or update customers from a CSV with the columns in `CSV_COLUMNS`.

    `phones` is semicolon-separated; an update replaces the customer's phone list and keeps its
    cases and tier. Bad rows are skipped and reported with their line number; a phone already owned
    by another customer rejects the row. Changes are flushed, not committed: the caller owns the
    transaction.
    """
    if isinstance(path_or_file, str | Path):
        with open(path_or_file, newline="", encoding="utf-8-sig") as handle:
            return import_csv(session, handle)
    reader = csv.DictReader(path_or_file)
    missing = [col for col in CSV_COLUMNS if col not in (reader.fieldnames or [])]
    if missing:
        raise CustomerImportError(f"CSV lacks column(s): {', '.join(missing)}")
    created = updated = 0
    rejected: list[Rejection] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        try:
            row = _parse_row(raw)
        except ValueError as exc:
            rejected.append(Rejection(line, str(exc)))
            continue
        if row.id in seen:
            rejected.append(Rejection(line, f"id {row.id} already appears on line {seen[row.id]}"))
            continue
        conflict = _phone_owner_conflict(session, row)
        if conflict is not None:
            rejected.append(Rejection(line, conflict))
            continue
        seen[row.id] = line
        customer = session.get(Customer, row.id)
        if customer is None:
            customer = Customer(id=row.id, phones=[])
            session.add(customer)
            created += 1
        else:
            updated += 1
        _apply_row(customer, row)
        # Flushed per row so the next row's phone-conflict check sees this one's numbers.
        session.flush()
    return ImportResult(created=created, updated=updated, rejected=tuple(rejected))


def import_csv_text(session: Session, text: str) -> ImportResult:
    """`import_csv` over CSV held in a string."""
    return import_csv(session, io.StringIO(text, newline=""))


def _open_complaints(session: Session, customer_ids: Iterable[str]) -> dict[str, int]:
    ids = list(customer_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Case.customer_id, func.count(Case.id))
        .where(Case.customer_id.in_(ids), Case.closed_at.is_(None), Case.kind == CaseKind.COMPLAINT)
        .group_by(Case.customer_id)
    )
    return {cid: int(count) for cid, count in rows}


def utc(at: datetime) -> datetime:
    # SQLite gives back times without their offset; the book writes them in UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def open_cases(session: Session, customer_id: str) -> tuple[CaseRecord, ...]:
    """The customer's open cases, oldest first, each with its steps."""
    return customer_cases(session, customer_id, open_only=True)


def customer_cases(session: Session, customer_id: str, *, open_only: bool = False) -> tuple[CaseRecord, ...]:
    """The customer's cases (only those not resolved with `open_only`), oldest first, each with its steps."""
    query = select(Case).where(Case.customer_id == customer_id)
    if open_only:
        query = query.where(Case.closed_at.is_(None))
    cases = session.scalars(query.order_by(Case.opened_at, Case.id).options(selectinload(Case.steps)))
    return tuple(case_record(case) for case in cases)


def case_record(case: Case) -> CaseRecord:
    """A stored case as the book hands it out, its steps in the order they were taken."""
    return CaseRecord(
        id=case.id,
        customer=case.customer_id,
        subject=case.subject,
        opened_at=utc(case.opened_at),
        steps=tuple(
            CaseStep(utc(s.at), s.who, s.done, s.next_step, s.status)
            for s in sorted(case.steps, key=lambda step: (step.at, step.id))
        ),
        kind=case.kind,
        status=case.status,
    )


def customer_value(customer: Customer, open_complaints: int) -> CustomerValue:
    """The pure value snapshot of a stored customer."""
    return CustomerValue(
        revenue_12m=customer.revenue_12m,
        tenure_years=customer.tenure_years,
        cost_to_serve=customer.cost_to_serve,
        open_complaints=open_complaints,
        lifecycle=customer.lifecycle,
        vip=customer.vip,
    )


def recompute_tiers(
    session: Session,
    weights: ValueWeights = DEFAULT_WEIGHTS,
    top_a: float = 0.05,
    top_b: float = 0.15,
) -> dict[Tier, int]:
    """Score every customer, store its tier (see `ctid.customers.value.assign_tiers`), and count each tier.

    Flushed, not committed. Open complaints do not change the score: they lift priority per call.
    """
    customers = list(session.scalars(select(Customer)))
    scores = {c.id: value_score(customer_value(c, 0), weights) for c in customers}
    tiers = assign_tiers(scores, top_a, top_b)
    for customer in customers:
        customer.tier = tiers[customer.id]
    session.flush()
    counts = Counter(tiers.values())
    return {tier: counts.get(tier, 0) for tier in Tier}


def lookup_by_phone(session: Session, number: str) -> CustomerRecord | None:
    """The customer calling from `number` (see `ctid.customers.phones`); None if unknown or ambiguous."""
    wanted = phone_key(number)
    if not wanted:
        return None
    # Either the stored number's tail equals ours, or (ours being the longer) ours ends in it.
    candidates = session.scalars(
        select(CustomerPhone).where(
            or_(
                CustomerPhone.number == wanted,
                CustomerPhone.match_key == key_tail(wanted),
            )
        )
    ).all()
    exact = [p for p in candidates if p.number == wanted]
    matches = exact or [p for p in candidates if numbers_match(p.number, wanted)]
    owners = {p.customer_id for p in matches}
    if len(owners) != 1:
        return None
    customer = session.get(Customer, owners.pop())
    if customer is None:
        return None
    complaints = _open_complaints(session, [customer.id]).get(customer.id, 0)
    return CustomerRecord(
        id=customer.id,
        name=customer.name,
        tier=customer.tier,
        lifecycle=customer.lifecycle,
        vip=customer.vip,
        open_complaints=complaints,
        value=customer_value(customer, complaints),
    )


def caller_lookup(engine: Engine) -> Lookup:
    """`lookup_by_phone` in a session of its own on `engine`: the lookup `CallerDirectory` is given."""

    def lookup(number: str) -> CustomerRecord | None:
        with Session(engine) as session:
            return lookup_by_phone(session, number)

    return lookup
