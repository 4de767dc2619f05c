"""What the book knows of one customer, as the screen pop and the customer API show it: `customer_history`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctid.customers.book import Customer, CustomerPhone, customer_cases, utc
from ctid.customers.cases import CaseKind, CaseRecord
from ctid.customers.tables import CustomerCall, CustomerNote, PriceQuote, QuoteStatus
from ctid.customers.value import Lifecycle, Tier
from ctid.errors import CtidError

MAX_CALLS = 50  # past calls in a history, newest first
MAX_NOTES = 200  # notes written outside the calls listed


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    call: str  # the call's linkedid, '' when written outside a call
    agent: str
    user: str
    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class PastCall:
    """One agent's part of a call from the customer (agent '' when nobody took it), with its notes."""

    linkedid: str
    server: str
    arrived_at: datetime
    queue: str
    agent: str
    wait_s: float
    talk_s: float
    disposition: str
    notes: tuple[Note, ...]


@dataclass(frozen=True, slots=True)
class Quote:
    id: int
    call: str
    agent: str
    user: str
    at: datetime
    product: str
    price: Decimal
    currency: str
    valid_until: datetime
    status: QuoteStatus


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """Everything the book holds on a customer. `cases`: those not resolved, oldest first; `calls` and
    `quotes` newest first (calls up to `MAX_CALLS`); `notes`: those not under a listed call, newest first.
    Survey scores and pending callbacks are not kept anywhere yet: always empty."""

    id: str
    name: str
    phones: tuple[str, ...]
    tier: Tier | None
    vip: bool
    revenue_12m: Decimal
    tenure_years: float
    cost_to_serve: Decimal
    lifecycle: Lifecycle
    cases: tuple[CaseRecord, ...]
    calls: tuple[PastCall, ...]
    quotes: tuple[Quote, ...]
    notes: tuple[Note, ...]
    surveys: tuple[()] = ()
    callbacks: tuple[()] = ()

    @property
    def win_back(self) -> bool:
        """A lost customer: to be won back."""
        return self.lifecycle is Lifecycle.LOST

    @property
    def open_complaints(self) -> int:
        return sum(1 for case in self.cases if case.kind is CaseKind.COMPLAINT)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times in ISO 8601, money as decimal strings."""
        return {
            "id": self.id,
            "name": self.name,
            "phones": list(self.phones),
            "tier": None if self.tier is None else self.tier.value,
            "vip": self.vip,
            "value": {
                "revenue_12m": str(self.revenue_12m),
                "tenure_years": self.tenure_years,
                "cost_to_serve": str(self.cost_to_serve),
                "open_complaints": self.open_complaints,
            },
            "lifecycle": self.lifecycle.value,
            "win_back": self.win_back,
            "cases": [case_dict(case) for case in self.cases],
            "calls": [
                {
                    "linkedid": c.linkedid,
                    "server": c.server,
                    "arrived_at": c.arrived_at.isoformat(),
                    "queue": c.queue,
                    "agent": c.agent,
                    "wait_s": c.wait_s,
                    "talk_s": c.talk_s,
                    "disposition": c.disposition,
                    "notes": [note_dict(n) for n in c.notes],
                }
                for c in self.calls
            ],
            "quotes": [quote_dict(q) for q in self.quotes],
            "notes": [note_dict(n) for n in self.notes],
            "surveys": [],
            "callbacks": [],
        }


def note_dict(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "call": note.call,
        "agent": note.agent,
        "user": note.user,
        "at": note.at.isoformat(),
        "text": note.text,
    }


def quote_dict(quote: Quote) -> dict[str, Any]:
    return {
        "id": quote.id,
        "call": quote.call,
        "agent": quote.agent,
        "user": quote.user,
        "at": quote.at.isoformat(),
        "product": quote.product,
        "price": str(quote.price),
        "currency": quote.currency,
        "valid_until": quote.valid_until.isoformat(),
        "status": quote.status.value,
    }


def case_dict(case: CaseRecord) -> dict[str, Any]:
    return {
        "id": case.id,
        "kind": case.kind.value,
        "status": case.status.value,
        "subject": case.subject,
        "opened_at": case.opened_at.isoformat(),
        "steps": [
            {
                "at": s.at.isoformat(),
                "who": s.who,
                "done": s.done,
                "next_step": s.next_step,
                "status": s.status,
            }
            for s in case.steps
        ],
    }


def as_note(row: CustomerNote) -> Note:
    return Note(row.id, row.call, row.agent, row.user, utc(row.at), row.text)


def as_quote(row: PriceQuote) -> Quote:
    return Quote(
        row.id,
        row.call,
        row.agent,
        row.user,
        utc(row.at),
        row.product,
        row.price,
        row.currency,
        utc(row.valid_until),
        row.status,
    )


def customer_quotes(session: Session, customer_id: str) -> tuple[Quote, ...]:
    """Every price quoted to the customer, newest first."""
    rows = session.scalars(
        select(PriceQuote)
        .where(PriceQuote.customer_id == customer_id)
        .order_by(PriceQuote.at.desc(), PriceQuote.id.desc())
    )
    return tuple(as_quote(row) for row in rows)


class UnknownCustomer(CtidError, LookupError):
    """No customer has this id."""


def customer_history(session: Session, customer_id: str) -> CustomerHistory:
    """The customer's history (see `CustomerHistory`), one query per table; UnknownCustomer if none."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(customer_id)
    phones = session.scalars(
        select(CustomerPhone.number)
        .where(CustomerPhone.customer_id == customer_id)
        .order_by(CustomerPhone.number)
    ).all()
    calls = session.scalars(
        select(CustomerCall)
        .where(CustomerCall.customer_id == customer_id)
        .order_by(CustomerCall.arrived_at.desc(), CustomerCall.id.desc())
        .limit(MAX_CALLS)
    ).all()
    notes = [
        as_note(row)
        for row in session.scalars(
            select(CustomerNote)
            .where(CustomerNote.customer_id == customer_id)
            .order_by(CustomerNote.at.desc(), CustomerNote.id.desc())
        )
    ]
    listed = {c.linkedid for c in calls}
    by_call: dict[str, list[Note]] = {}
    for note in notes:
        by_call.setdefault(note.call, []).append(note)
    return CustomerHistory(
        id=customer.id,
        name=customer.name,
        phones=tuple(phones),
        tier=customer.tier,
        vip=customer.vip,
        revenue_12m=customer.revenue_12m,
        tenure_years=customer.tenure_years,
        cost_to_serve=customer.cost_to_serve,
        lifecycle=customer.lifecycle,
        cases=customer_cases(session, customer_id, open_only=True),
        calls=tuple(
            PastCall(
                c.linkedid,
                c.server,
                datetime.fromtimestamp(c.arrived_at, UTC),
                c.queue,
                c.agent,
                c.wait_s,
                c.talk_s,
                c.disposition,
                # a call's notes under its first listed part only (a transfer lists one part per agent)
                tuple(by_call.pop(c.linkedid, ())),
            )
            for c in calls
        ),
        quotes=customer_quotes(session, customer_id),
        notes=tuple(n for n in notes if n.call not in listed)[:MAX_NOTES],
    )
