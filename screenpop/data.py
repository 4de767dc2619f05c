"""What a pop shows of the customer: their whole history from the customer book (`customer_history`),
found by the id the IVR named, else by the caller's number. SQL: run it off the event loop."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctid.customers import value_score
from ctid.customers.book import Customer, customer_value, lookup_by_phone
from ctid.customers.history import customer_history

FOUND_BY_ID = "customer-id"  # the IVR named the customer (CTID_CUSTOMER)
FOUND_BY_NUMBER = "caller-number"  # looked up here by the caller's number


def load_pop_data(engine: Engine, customer_id: str, caller_number: str) -> dict[str, Any]:
    """The customer of a call with their history (`CustomerHistory.to_dict()`, the figures flattened for
    the pop and a value score), and their open cases; `{"customer": None}` for an unknown caller."""
    with Session(engine) as session:
        customer = session.get(Customer, customer_id) if customer_id else None
        found_by = FOUND_BY_ID
        if customer is None and caller_number:
            record = lookup_by_phone(session, caller_number)
            customer = session.get(Customer, record.id) if record is not None else None
            found_by = FOUND_BY_NUMBER
        if customer is None:
            return {"customer": None, "found_by": "", "open_cases": []}
        history = customer_history(session, customer.id)
        data = history.to_dict()
        figures = data.pop("value")
        score = value_score(customer_value(customer, history.open_complaints))
        return {
            "customer": {**data, **figures, "value_score": round(score, 3)},
            "found_by": found_by,
            "open_cases": data["cases"],
        }
