"""Writing to a customer's history: each write stores its rows with the author and the time in the caller's
session (the caller commits: one transaction per request) and gives back the domain event that tells it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ctid.customers.book import Case, Customer, CustomerPhone, SupportCaseStep, key_tail
from ctid.customers.cases import CaseStatus
from ctid.customers.forms import (
    CaseForm,
    DispositionForm,
    FormError,
    LifecycleForm,
    NewCustomer,
    NoteForm,
    QuoteForm,
    StepForm,
)
from ctid.customers.history import UnknownCustomer
from ctid.customers.phones import numbers_match, phone_key
from ctid.customers.tables import CallDisposition, CustomerCall, CustomerNote, LifecycleChange, PriceQuote
from ctid.state import domain as d

MAX_RESULTS = 50


@dataclass(frozen=True, slots=True)
class Author:
    """Who writes: the logged-in user, and their agent id ('' for supervisors and admins)."""

    user: str
    agent: str = ""


class UnknownCase(UnknownCustomer):
    """The customer has no case with this id."""


def _customer(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(customer_id)
    return customer


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def create_customer(session: Session, form: NewCustomer, author: Author, now: float) -> d.CustomerCreated:
    """A new customer; FormError if the id is taken or a phone belongs to someone else."""
    if session.get(Customer, form.id) is not None:
        raise FormError({"id": f"customer {form.id} exists already"})
    for number in form.phones:
        # a number that is the same line as one on file would make the caller's lookup ambiguous
        owners = phone_owners(session, number)
        if owners:
            raise FormError({"phones": f"{number} is the number of customer {min(owners)}"})
    session.add(
        Customer(
            id=form.id,
            name=form.name,
            lifecycle=form.lifecycle,
            revenue_12m=form.revenue_12m,
            tenure_years=form.tenure_years,
            cost_to_serve=form.cost_to_serve,
            vip=form.vip,
            phones=[CustomerPhone(number=n, match_key=key_tail(n)) for n in form.phones],
        )
    )
    session.flush()
    return d.CustomerCreated(now, "", form.id, "", author.agent, author.user)


def search_customers(
    session: Session, *, phone: str = "", name: str = "", account: str = ""
) -> list[dict[str, object]]:
    """Customers matching every criterion given (a number by the book's rule, a name's part, an account id
    exactly), by id, at most `MAX_RESULTS`: id, name, lifecycle and tier each."""
    query = select(Customer)
    if phone:
        query = query.where(Customer.id.in_(phone_owners(session, phone_key(phone))))
    if name:
        query = query.where(Customer.name.ilike(f"%{_like_escaped(name)}%", escape="\\"))
    if account:
        query = query.where(Customer.id == account)
    found = session.scalars(query.order_by(Customer.id).limit(MAX_RESULTS))
    return [
        {
            "id": c.id,
            "name": c.name,
            "lifecycle": c.lifecycle.value,
            "tier": None if c.tier is None else c.tier.value,
        }
        for c in found
    ]


def phone_owners(session: Session, number: str) -> set[str]:
    """The customers with a number that is the same line as phone key `number`, by the book's rule."""
    candidates = session.execute(  # by the indexed tail, then the exact or tail match
        select(CustomerPhone.number, CustomerPhone.customer_id).where(
            or_(CustomerPhone.number == number, CustomerPhone.match_key == key_tail(number))
        )
    ).all()
    return {owner for stored, owner in candidates if numbers_match(stored, number)}


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def add_note(session: Session, customer_id: str, form: NoteForm, author: Author, now: float) -> d.NoteAdded:
    _customer(session, customer_id)
    note = CustomerNote(
        customer_id=customer_id,
        call=form.call,
        agent=author.agent,
        user=author.user,
        at=_at(now),
        text=form.text,
    )
    session.add(note)
    session.flush()
    return d.NoteAdded(now, "", customer_id, form.call, author.agent, author.user, note.id)


def record_quote(
    session: Session, customer_id: str, form: QuoteForm, author: Author, now: float
) -> d.QuoteRecorded:
    _customer(session, customer_id)
    quote = PriceQuote(
        customer_id=customer_id,
        call=form.call,
        agent=author.agent,
        user=author.user,
        at=_at(now),
        product=form.product,
        price=form.price,
        currency=form.currency,
        valid_until=form.valid_until,
        status=form.status,
    )
    session.add(quote)
    session.flush()
    return d.QuoteRecorded(now, "", customer_id, form.call, author.agent, author.user, quote.id, form.status)


def _set_status(case: Case, status: CaseStatus, at: datetime) -> None:
    case.status = status
    case.closed_at = at if status is CaseStatus.RESOLVED else None


def open_case(session: Session, customer_id: str, form: CaseForm, author: Author, now: float) -> d.CaseOpened:
    _customer(session, customer_id)
    case = Case(customer_id=customer_id, opened_at=_at(now), subject=form.subject, kind=form.kind)
    _set_status(case, form.status, _at(now))
    session.add(case)
    session.flush()
    return d.CaseOpened(
        now, "", customer_id, form.call, author.agent, author.user, case.id, form.kind, form.status
    )


def add_case_step(
    session: Session, customer_id: str, case_id: int, form: StepForm, author: Author, now: float
) -> d.CaseStepAdded:
    """A step on the customer's case, by the author; it sets the case's status (resolved closes it)."""
    case = session.get(Case, case_id)
    if case is None or case.customer_id != customer_id:
        raise UnknownCase(f"{customer_id}/{case_id}")
    step = SupportCaseStep(
        case_id=case.id,
        at=_at(now),
        who=author.user,
        done=form.done,
        next_step=form.next_step,
        status=form.status,
    )
    session.add(step)
    _set_status(case, form.status, _at(now))
    session.flush()
    return d.CaseStepAdded(
        now, "", customer_id, form.call, author.agent, author.user, case.id, step.id, form.status
    )


def set_lifecycle(
    session: Session, customer_id: str, form: LifecycleForm, author: Author, now: float
) -> d.LifecycleChanged:
    """Move the customer to a lifecycle stage, the change recorded (also when the stage stays the same)."""
    customer = _customer(session, customer_id)
    previous = customer.lifecycle
    customer.lifecycle = form.stage
    session.add(
        LifecycleChange(
            customer_id=customer_id,
            call=form.call,
            agent=author.agent,
            user=author.user,
            at=_at(now),
            previous=previous,
            stage=form.stage,
        )
    )
    session.flush()
    return d.LifecycleChanged(
        now, "", customer_id, form.call, author.agent, author.user, previous, form.stage
    )


def dispose_call(
    session: Session,
    linkedid: str,
    for_agent: str,
    customer_id: str,
    form: DispositionForm,
    author: Author,
    now: float,
) -> d.CallDisposed:
    """Record the disposition of `for_agent`'s part of the call, and set it on the customer's call row if
    it is written already (the writer of `customer_calls` reads it from `call_disposition` otherwise)."""
    session.add(
        CallDisposition(call=linkedid, agent=for_agent, user=author.user, at=_at(now), code=form.code)
    )
    session.execute(
        update(CustomerCall)
        .where(CustomerCall.linkedid == linkedid, CustomerCall.agent == for_agent)
        .values(disposition=form.code)
    )
    session.flush()
    return d.CallDisposed(now, "", customer_id, linkedid, author.agent, author.user, for_agent, form.code)
