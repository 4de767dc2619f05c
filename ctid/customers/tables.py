"""The customer's history in SQL beside the book: notes, price quotes, lifecycle changes, dispositions, and
the calls the customer made (`customer_calls`, written from the bus). Every table is indexed on customer."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, Double, Enum, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ctid.customers.value import Lifecycle
from ctid.db import Base


class QuoteStatus(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


def str_enum(enum_cls: type[enum.StrEnum], length: int) -> Enum:
    """A VARCHAR with a CHECK rather than a native enum, storing the values: portable and migration-light."""
    return Enum(
        enum_cls,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


_CUSTOMER = "customer.id"


class CustomerNote(Base):
    """A note an agent wrote on a customer, during a call (`call`: its linkedid) or not ('')."""

    __tablename__ = "customer_note"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey(_CUSTOMER, ondelete="CASCADE"), index=True)
    call: Mapped[str] = mapped_column(String(64), default="", index=True)
    agent: Mapped[str] = mapped_column(String(64), default="")
    user: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    text: Mapped[str] = mapped_column(Text)


class PriceQuote(Base):
    """A price quoted to a customer: product, price in `currency` (ISO 4217), valid until, and its status."""

    __tablename__ = "price_quote"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey(_CUSTOMER, ondelete="CASCADE"), index=True)
    call: Mapped[str] = mapped_column(String(64), default="")
    agent: Mapped[str] = mapped_column(String(64), default="")
    user: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    product: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[QuoteStatus] = mapped_column(str_enum(QuoteStatus, 16))


class LifecycleChange(Base):
    """An agent moved a customer from one lifecycle stage to another."""

    __tablename__ = "customer_lifecycle_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey(_CUSTOMER, ondelete="CASCADE"), index=True)
    call: Mapped[str] = mapped_column(String(64), default="")
    agent: Mapped[str] = mapped_column(String(64), default="")
    user: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    previous: Mapped[Lifecycle] = mapped_column(str_enum(Lifecycle, 16))
    stage: Mapped[Lifecycle] = mapped_column(str_enum(Lifecycle, 16))


class CallDisposition(Base):
    """The disposition code an agent (or a supervisor for them) chose for a call."""

    __tablename__ = "call_disposition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call: Mapped[str] = mapped_column(String(64), index=True)
    agent: Mapped[str] = mapped_column(String(64))  # the agent who took the call
    user: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    code: Mapped[str] = mapped_column(String(64))


class CustomerCall(Base):
    """One agent's part of a call from a customer (one row per call and agent; `agent` '' when no agent took
    it): when it came, where it waited, how long, and the agent's disposition."""

    __tablename__ = "customer_calls"
    __table_args__ = (Index("ix_customer_calls_customer_arrived", "customer_id", "arrived_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))  # no foreign key: a call may name an unknown id
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    server: Mapped[str] = mapped_column(String(64))
    arrived_at: Mapped[float] = mapped_column(Double)  # epoch seconds
    queue: Mapped[str] = mapped_column(String(64), default="")
    agent: Mapped[str] = mapped_column(String(64), default="", index=True)
    wait_s: Mapped[float] = mapped_column(Double, default=0.0)
    talk_s: Mapped[float] = mapped_column(Double, default=0.0)
    disposition: Mapped[str] = mapped_column(String(64), default="")
