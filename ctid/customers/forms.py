"""What the customer API and the CSV imports accept, checked once: plain values in (JSON or CSV cells),
typed frozen forms out, or `FormError` naming every bad field. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ctid.customers.cases import CaseKind, CaseStatus
from ctid.customers.phones import phone_key
from ctid.customers.tables import QuoteStatus
from ctid.customers.value import Lifecycle
from ctid.errors import CtidError

T = TypeVar("T")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_PRICE = Decimal("999999999999.99")  # Numeric(14, 2)


class FormError(CtidError):
    """Input that cannot be stored; `errors`: field -> what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class _Fields:
    """Reads one form's fields, collecting every problem before raising."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.errors: dict[str, str] = {}

    def text(self, key: str, max_len: int, *, required: bool = True, default: str = "") -> str:
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.errors[key] = "is required"
            return default
        if not isinstance(value, str):
            self.errors[key] = "must be a string"
            return default
        value = value.strip()
        if required and not value:
            self.errors[key] = "is required"
        elif len(value) > max_len:
            self.errors[key] = f"is longer than {max_len} characters"
        return value

    def choice(self, key: str, kind: Callable[[str], T], default: T | None = None) -> T | None:
        value = self.raw.get(key)
        if (value is None or value == "") and default is not None:
            return default
        try:
            if not isinstance(value, str):
                raise ValueError
            return kind(value.strip().lower())
        except ValueError:
            allowed = ", ".join(str(m) for m in kind.__members__.values())  # type: ignore[attr-defined]
            self.errors[key] = f"must be one of {allowed}"
            return None

    def money(self, key: str) -> Decimal:
        value = self.raw.get(key)
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise InvalidOperation
            amount = Decimal(str(value).strip())
            if not amount.is_finite() or amount < 0 or amount > _MAX_PRICE:
                raise InvalidOperation
        except InvalidOperation:
            self.errors[key] = "must be a number from 0 to 999999999999.99"
            return Decimal(0)
        return amount.quantize(Decimal("0.01"))

    def number(self, key: str) -> float:
        value = self.raw.get(key)
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError
            number = float(value)
            if not 0 <= number < float("inf"):
                raise ValueError
        except ValueError:
            self.errors[key] = "must be a number, 0 or more"
            return 0.0
        return number

    def moment(self, key: str, *, required: bool = True) -> datetime | None:
        """An ISO 8601 date (its midnight, UTC) or date and time (UTC when it names no zone)."""
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.errors[key] = "is required"
            return None
        try:
            if not isinstance(value, str):
                raise ValueError
            text = value.strip()
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
            at = datetime.fromisoformat(text)
        except ValueError:
            self.errors[key] = "must be an ISO 8601 date or date and time"
            return None
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    def done(self) -> None:
        if self.errors:
            raise FormError(self.errors)


@dataclass(frozen=True, slots=True)
class NewCustomer:
    id: str
    name: str
    phones: tuple[str, ...]
    lifecycle: Lifecycle
    revenue_12m: Decimal
    tenure_years: float
    cost_to_serve: Decimal
    vip: bool


def new_customer(raw: Mapping[str, Any]) -> NewCustomer:
    """A customer to create: id and name required; phones a list of numbers; figures default to 0."""
    f = _Fields(raw)
    customer_id = f.text("id", 64)
    name = f.text("name", 200)
    lifecycle = f.choice("lifecycle", Lifecycle, Lifecycle.PROSPECT)
    phones: list[str] = []
    given = raw.get("phones", [])
    if not isinstance(given, list) or not all(isinstance(p, str) for p in given):
        f.errors["phones"] = "must be a list of phone numbers"
    else:
        for number in given:
            key = phone_key(number)
            if not key or len(key) > 32:
                f.errors["phones"] = f"is not a usable number: {number!r}"
            elif key not in phones:
                phones.append(key)
    revenue = f.money("revenue_12m") if "revenue_12m" in raw else Decimal("0.00")
    cost = f.money("cost_to_serve") if "cost_to_serve" in raw else Decimal("0.00")
    tenure = f.number("tenure_years") if "tenure_years" in raw else 0.0
    vip = raw.get("vip", False)
    if not isinstance(vip, bool):
        f.errors["vip"] = "must be true or false"
    f.done()
    assert lifecycle is not None
    return NewCustomer(customer_id, name, tuple(phones), lifecycle, revenue, tenure, cost, bool(vip))


@dataclass(frozen=True, slots=True)
class NoteForm:
    text: str
    call: str


def note_form(raw: Mapping[str, Any]) -> NoteForm:
    f = _Fields(raw)
    text = f.text("text", 10_000)
    call = f.text("call", 64, required=False)
    f.done()
    return NoteForm(text, call)


@dataclass(frozen=True, slots=True)
class QuoteForm:
    product: str
    price: Decimal
    currency: str
    valid_until: datetime
    status: QuoteStatus
    call: str


def quote_form(raw: Mapping[str, Any]) -> QuoteForm:
    """A price quote: product, price, currency (ISO 4217: three capital letters), valid_until, status
    (offered unless given)."""
    f = _Fields(raw)
    product = f.text("product", 200)
    price = f.money("price")
    currency = f.text("currency", 3)
    if "currency" not in f.errors and not _CURRENCY.fullmatch(currency):
        f.errors["currency"] = "must be an ISO 4217 code: three capital letters"
    valid_until = f.moment("valid_until")
    status = f.choice("status", QuoteStatus, QuoteStatus.OFFERED)
    call = f.text("call", 64, required=False)
    f.done()
    assert valid_until is not None and status is not None
    return QuoteForm(product, price, currency, valid_until, status, call)


@dataclass(frozen=True, slots=True)
class CaseForm:
    kind: CaseKind
    subject: str
    status: CaseStatus
    call: str


def case_form(raw: Mapping[str, Any]) -> CaseForm:
    """A case to open: kind (complaint unless given), subject, status (open unless given)."""
    f = _Fields(raw)
    kind = f.choice("kind", CaseKind, CaseKind.COMPLAINT)
    subject = f.text("subject", 200)
    status = f.choice("status", CaseStatus, CaseStatus.OPEN)
    call = f.text("call", 64, required=False)
    f.done()
    assert kind is not None and status is not None
    return CaseForm(kind, subject, status, call)


@dataclass(frozen=True, slots=True)
class StepForm:
    done: str
    next_step: str
    status: CaseStatus
    call: str


def step_form(raw: Mapping[str, Any]) -> StepForm:
    """A step on a case: what was done, the next step, and the case's status after it (required)."""
    f = _Fields(raw)
    done = f.text("done", 500)
    next_step = f.text("next_step", 500, required=False)
    status = f.choice("status", CaseStatus)
    call = f.text("call", 64, required=False)
    f.done()
    assert status is not None
    return StepForm(done, next_step, status, call)


@dataclass(frozen=True, slots=True)
class LifecycleForm:
    stage: Lifecycle
    call: str


def lifecycle_form(raw: Mapping[str, Any]) -> LifecycleForm:
    f = _Fields(raw)
    stage = f.choice("stage", Lifecycle)
    call = f.text("call", 64, required=False)
    f.done()
    assert stage is not None
    return LifecycleForm(stage, call)


@dataclass(frozen=True, slots=True)
class DispositionForm:
    code: str
    agent: str  # the agent whose part of the call it disposes ('' : the author's own)


def disposition_form(raw: Mapping[str, Any], codes: tuple[str, ...]) -> DispositionForm:
    """A disposition: `code` one of `codes` (routing.yaml's dispositions)."""
    f = _Fields(raw)
    code = f.text("code", 64)
    if "code" not in f.errors and code not in codes:
        f.errors["code"] = f"is not one of the configured dispositions: {', '.join(codes) or '(none)'}"
    agent = f.text("agent", 64, required=False)
    f.done()
    return DispositionForm(code, agent)
