"""The customer part of a pop, read from the customer book: by id, else by the caller's number."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctid.customers.book import create_schema, import_csv_text
from ctid.db import make_engine
from screenpop.data import FOUND_BY_ID, FOUND_BY_NUMBER, load_pop_data
from tests.screenpop.rig import COMPLAINT, STEPS, open_complaint

CUSTOMERS = """\
id,name,phones,revenue_12m,tenure_years,cost_to_serve,lifecycle,vip
gold,Gold Ltd,13900000001,900000,9,100,client,true
gone,Gone Co,13900000002,5000,3,200,lost,false
"""


def book() -> Engine:
    engine = make_engine("sqlite://")
    create_schema(engine)
    with Session(engine) as session:
        assert not import_csv_text(session, CUSTOMERS).rejected
        session.commit()
    open_complaint(engine, "gold")
    return engine


def test_a_customer_named_by_the_ivr_with_figures_and_open_cases() -> None:
    engine = book()
    data = load_pop_data(engine, "gold", "")
    customer = data["customer"]
    assert data["found_by"] == FOUND_BY_ID
    assert (customer["name"], customer["lifecycle"], customer["vip"], customer["win_back"]) == (
        "Gold Ltd",
        "client",
        True,
        False,
    )
    assert customer["revenue_12m"] == "900000.00" and customer["tenure_years"] == 9
    (case,) = data["open_cases"]
    assert case["subject"] == COMPLAINT
    assert [(s["who"], s["done"], s["next_step"]) for s in case["steps"]] == list(STEPS)


def test_a_lost_customer_found_by_number_is_marked_for_win_back() -> None:
    data = load_pop_data(book(), "", "+86 139 0000 0002")
    assert data["found_by"] == FOUND_BY_NUMBER
    assert data["customer"]["id"] == "gone" and data["customer"]["win_back"] is True
    assert data["open_cases"] == []


def test_an_unknown_caller() -> None:
    assert load_pop_data(book(), "nobody", "13800000000") == {
        "customer": None,
        "found_by": "",
        "open_cases": [],
    }
