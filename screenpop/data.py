"""What a pop shows of the customer, read from the customer book (SQL): run it off the event loop."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctid.customers import CaseRecord, Lifecycle, value_score
from ctid.customers.book import Customer, customer_value, lookup_by_phone, open_cases

FOUND_BY_ID = "customer-id"  # the IVR named the customer (CTID_CUSTOMER)
FOUND_BY_NUMBER = "caller-number"  # looked up here by the caller's number


def load_pop_data(engine: Engine, customer_id: str, caller_number: str) -> dict[str, Any]:
    """The customer of a call (by id, else by the caller's number) with their figures and open cases;
    `{"customer": None}` for an unknown caller. JSON-ready."""
    with Session(engine) as session:
        customer = session.get(Customer, customer_id) if customer_id else None
        found_by = FOUND_BY_ID
        if customer is None and caller_number:
            record = lookup_by_phone(session, caller_number)
            customer = session.get(Customer, record.id) if record is not None else None
            found_by = FOUND_BY_NUMBER
        if customer is None:
            return {"customer": None, "found_by": "", "open_cases": []}
        cases = open_cases(session, customer.id)
        value = customer_value(customer, len(cases))
        return {
            "customer": {
                "id": customer.id,
                "name": customer.name,
                "tier": customer.tier.value if customer.tier is not None else "",
                "lifecycle": customer.lifecycle.value,
                "win_back": customer.lifecycle is Lifecycle.LOST,
                "vip": customer.vip,
                "revenue_12m": str(customer.revenue_12m),
                "tenure_years": customer.tenure_years,
                "cost_to_serve": str(customer.cost_to_serve),
                "value_score": round(value_score(value), 3),
            },
            "found_by": found_by,
            "open_cases": [_case(case) for case in cases],
        }


def _case(case: CaseRecord) -> dict[str, Any]:
    return {
        "id": case.id,
        "subject": case.subject,
        "opened_at": case.opened_at.isoformat(),
        "steps": [
            {"at": step.at.isoformat(), "who": step.who, "done": step.done, "next_step": step.next_step}
            for step in case.steps
        ],
    }
