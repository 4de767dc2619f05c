"""The customer API over loopback HTTP behind the real gate: who may read and write which customer, what
each write stores and publishes, and bad input answered with a 4xx and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ctid.agents import AgentBook
from ctid.agents.book import AgentRecord
from ctid.auth import Role
from ctid.bus import EventBus
from ctid.clock import VirtualClock
from ctid.component import Context
from ctid.customers.book import Customer, import_csv_text
from ctid.customers.component import CustomersComponent
from ctid.customers.tables import CallDisposition, CustomerCall, CustomerNote, PriceQuote
from ctid.db import make_engine
from ctid.state import domain as d
from tests.auth_rig import bearer, fake_auth
from tests.customers.rig import CUSTOMERS_CSV, customer_call

CODES = ("resolved", "follow-up")


@pytest.fixture()
async def site() -> AsyncIterator[Any]:
    """The customers component's routes behind the gate, on an in-memory book with c1 and c2; agents a1
    (PJSIP/1001) and a2 (PJSIP/1002), a supervisor; and what the component publishes."""
    engine = make_engine("sqlite://")
    clock = VirtualClock()
    bus = EventBus()
    published: list[tuple[str, d.DomainEvent]] = []
    bus.subscribe(lambda origin, event: published.append((origin, event)))
    agents = AgentBook([AgentRecord("a1", "PJSIP/1001"), AgentRecord("a2", "PJSIP/1002")])
    ctx = Context(cast(Any, None), clock, bus, cast(Any, None), engine, ("pbx1",), agents=agents)
    customers = CustomersComponent(ctx)
    customers.route_with(lambda dnis, asked: "sales", lambda: "C", lambda: CODES)
    for subscriber in customers.subscriptions():
        bus.subscribe(subscriber)
    with Session(engine) as session:
        import_csv_text(session, CUSTOMERS_CSV)
        session.commit()
    auth, _ = fake_auth(engine, clock=clock)
    app = web.Application()
    auth.mount(app, customers.routes())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield SimpleNamespace(
            client=client,
            engine=engine,
            clock=clock,
            bus=bus,
            customers=customers,
            published=[p for p in published if p[0] == "customers"],
            all_published=published,
            a1=bearer(engine, "ann", Role.AGENT, "a1"),
            a2=bearer(engine, "bert", Role.AGENT, "a2"),
            sup=bearer(engine, "sue", Role.SUPERVISOR),
        )
    await customers.close()
    engine.dispose()


def _published(site: Any) -> list[d.DomainEvent]:
    return [event for origin, event in site.all_published if origin == "customers"]


def _count(site: Any, table: Any) -> int:
    with Session(site.engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


async def _call_from_c1(site: Any, linkedid: str = "L1", device: str = "PJSIP/1001") -> None:
    site.bus.publish("pbx1", customer_call(linkedid, "c1", device, site.clock.now()))
    assert await site.customers.writer.flush()


async def test_every_customer_route_needs_a_login(site: Any) -> None:
    for method, path in [
        ("GET", "/api/customers?name=a"),
        ("POST", "/api/customers"),
        ("GET", "/api/customers/c1"),
        ("POST", "/api/customers/c1/notes"),
        ("GET", "/api/customers/c1/quotes"),
        ("POST", "/api/customers/c1/cases/1/steps"),
        ("POST", "/api/calls/L1/disposition"),
    ]:
        response = await site.client.request(method, path, json={})
        assert response.status == 401, (method, path)


async def test_a_supervisor_reads_any_customers_history(site: Any) -> None:
    response = await site.client.get("/api/customers/c2", headers=site.sup)
    assert response.status == 200
    body = await response.json()
    assert (body["id"], body["name"], body["lifecycle"], body["win_back"]) == (
        "c2",
        "Bob Stone",
        "lost",
        True,
    )
    assert body["phones"] == ["4155550100"] and body["calls"] == [] and body["callbacks"] == []


async def test_an_agent_sees_only_customers_of_their_calls(site: Any) -> None:
    assert (await site.client.get("/api/customers/c1", headers=site.a1)).status == 403
    assert (
        await site.client.post("/api/customers/c1/notes", json={"text": "hi"}, headers=site.a1)
    ).status == 403
    # ringing for c1's call is enough: the pop needs the history before the answer
    site.bus.publish("pbx1", customer_call("L1", "c1", "PJSIP/1001", site.clock.now())[:4])
    assert (await site.client.get("/api/customers/c1", headers=site.a1)).status == 200
    assert (await site.client.get("/api/customers/c1", headers=site.a2)).status == 403
    site.bus.publish("pbx1", customer_call("L1", "c1", "PJSIP/1001", site.clock.now())[4:])
    # after the call, the rest of the day: from memory until written, then from customer_calls
    assert (await site.client.get("/api/customers/c1", headers=site.a1)).status == 200
    assert await site.customers.writer.flush()
    assert (await site.client.get("/api/customers/c1", headers=site.a1)).status == 200
    assert (await site.client.get("/api/customers/c2", headers=site.a1)).status == 403
    site.clock.advance(86_400)  # the next day
    assert (await site.client.get("/api/customers/c1", headers=site.a1)).status == 403


async def test_an_agents_search_finds_only_customers_they_may_see(site: Any) -> None:
    await _call_from_c1(site)
    found = await (await site.client.get("/api/customers?phone=020 7946 0958", headers=site.a1)).json()
    assert [c["id"] for c in found["customers"]] == ["c1"]
    found = await (await site.client.get("/api/customers?name=ACME", headers=site.a1)).json()
    assert [c["id"] for c in found["customers"]] == ["c1"]
    found = await (await site.client.get("/api/customers?name=stone", headers=site.a1)).json()
    assert found["customers"] == []  # Bob Stone never called ann
    found = await (await site.client.get("/api/customers?name=stone", headers=site.sup)).json()
    assert [c["id"] for c in found["customers"]] == ["c2"]
    found = await (await site.client.get("/api/customers?account=c2", headers=site.sup)).json()
    assert [c["id"] for c in found["customers"]] == ["c2"]
    found = await (await site.client.get("/api/customers?phone=+1 415 555 0100", headers=site.sup)).json()
    assert [c["id"] for c in found["customers"]] == ["c2"]
    assert (await site.client.get("/api/customers", headers=site.sup)).status == 422


async def test_an_agent_on_the_call_writes_a_note_a_quote_a_case_and_a_step(site: Any) -> None:
    await _call_from_c1(site)
    site.clock.advance(200)
    note = await site.client.post(
        "/api/customers/c1/notes", json={"text": "wants fibre", "call": "L1"}, headers=site.a1
    )
    assert note.status == 201
    quote = await site.client.post(
        "/api/customers/c1/quotes",
        json={"product": "fibre 1G", "price": "49.90", "currency": "GBP", "valid_until": "2026-12-31"},
        headers=site.a1,
    )
    assert quote.status == 201
    case = await site.client.post(
        "/api/customers/c1/cases", json={"kind": "complaint", "subject": "outage"}, headers=site.a1
    )
    case_id = (await case.json())["case_id"]
    step = await site.client.post(
        f"/api/customers/c1/cases/{case_id}/steps",
        json={"done": "opened a ticket", "next_step": "call back", "status": "in_progress"},
        headers=site.a1,
    )
    assert step.status == 201
    stage = await site.client.post("/api/customers/c1/lifecycle", json={"stage": "advocate"}, headers=site.a1)
    assert stage.status == 201

    history = await (await site.client.get("/api/customers/c1", headers=site.a2 | site.sup)).json()
    assert [n["text"] for n in history["calls"][0]["notes"]] == ["wants fibre"]
    assert history["calls"][0]["notes"][0]["user"] == "ann"
    assert [(q["product"], q["price"], q["currency"], q["agent"]) for q in history["quotes"]] == [
        ("fibre 1G", "49.90", "GBP", "a1")
    ]
    assert history["quotes"][0]["valid_until"] == "2026-12-31T00:00:00+00:00"
    [complaint] = history["cases"]
    assert (complaint["kind"], complaint["status"]) == ("complaint", "in_progress")
    assert [(s["who"], s["done"], s["next_step"]) for s in complaint["steps"]] == [
        ("ann", "opened a ticket", "call back")
    ]
    assert history["lifecycle"] == "advocate"
    kinds = [(e.kind, e.customer, e.user, e.agent) for e in _published(site)]  # type: ignore[attr-defined]
    assert kinds == [
        ("NoteAdded", "c1", "ann", "a1"),
        ("QuoteRecorded", "c1", "ann", "a1"),
        ("CaseOpened", "c1", "ann", "a1"),
        ("CaseStepAdded", "c1", "ann", "a1"),
        ("LifecycleChanged", "c1", "ann", "a1"),
    ]
    cases = await (await site.client.get("/api/customers/c1/cases", headers=site.a1)).json()
    assert [c["subject"] for c in cases["cases"]] == ["outage"]
    quotes = await (await site.client.get("/api/customers/c1/quotes", headers=site.a1)).json()
    assert [q["product"] for q in quotes["quotes"]] == ["fibre 1G"]


async def test_creating_a_customer_is_validated(site: Any) -> None:
    created = await site.client.post(
        "/api/customers",
        json={"id": "c9", "name": "New Co", "phones": ["+33 1 23 45 67 89"]},
        headers=site.sup,
    )
    assert created.status == 201
    assert _published(site)[-1].kind == "CustomerCreated"
    history = await (await site.client.get("/api/customers/c9", headers=site.sup)).json()
    assert (history["name"], history["phones"], history["lifecycle"]) == (
        "New Co",
        ["33123456789"],
        "prospect",
    )
    again = await site.client.post("/api/customers", json={"id": "c9", "name": "Twice"}, headers=site.sup)
    assert again.status == 422 and "id" in (await again.json())["errors"]
    taken = await site.client.post(
        "/api/customers", json={"id": "c10", "name": "X", "phones": ["020 7946 0958"]}, headers=site.sup
    )
    assert taken.status == 422 and "phones" in (await taken.json())["errors"]
    bad = await site.client.post(
        "/api/customers",
        json={"name": 5, "phones": "123", "vip": "yes", "lifecycle": "vip"},
        headers=site.sup,
    )
    assert bad.status == 422
    assert set((await bad.json())["errors"]) == {"id", "name", "phones", "vip", "lifecycle"}
    assert _count(site, Customer) == 3


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/customers/c1/notes", {"text": ""}, "text"),
        ("/api/customers/c1/notes", {"text": ["a"]}, "text"),
        (
            "/api/customers/c1/quotes",
            {"product": "x", "price": "-1", "currency": "EUR", "valid_until": "2027-01-01"},
            "price",
        ),
        (
            "/api/customers/c1/quotes",
            {"product": "x", "price": 1, "currency": "euro", "valid_until": "2027-01-01"},
            "currency",
        ),
        (
            "/api/customers/c1/quotes",
            {"product": "x", "price": 1, "currency": "EUR", "valid_until": "soon"},
            "valid_until",
        ),
        (
            "/api/customers/c1/quotes",
            {"product": "x", "price": True, "currency": "EUR", "valid_until": "2027-01-01"},
            "price",
        ),
        ("/api/customers/c1/cases", {"kind": "rant", "subject": "x"}, "kind"),
        ("/api/customers/c1/lifecycle", {"stage": "gone"}, "stage"),
    ],
)
async def test_wrong_fields_are_a_422_naming_them_and_nothing_is_stored(
    site: Any, path: str, body: dict[str, Any], field: str
) -> None:
    response = await site.client.post(path, json=body, headers=site.sup)
    assert response.status == 422
    assert field in (await response.json())["errors"]
    assert _published(site) == []
    assert _count(site, CustomerNote) == _count(site, PriceQuote) == 0


async def test_unknown_ids_are_a_404(site: Any) -> None:
    assert (await site.client.get("/api/customers/nobody", headers=site.sup)).status == 404
    assert (
        await site.client.post("/api/customers/nobody/notes", json={"text": "x"}, headers=site.sup)
    ).status == 404
    step = {"done": "x", "status": "open"}
    assert (
        await site.client.post("/api/customers/c1/cases/999/steps", json=step, headers=site.sup)
    ).status == 404
    assert (
        await site.client.post("/api/customers/c1/cases/abc/steps", json=step, headers=site.sup)
    ).status == 404
    dispose = {"code": "resolved", "agent": "a1"}
    assert (
        await site.client.post("/api/calls/nope/disposition", json=dispose, headers=site.sup)
    ).status == 404


async def test_malformed_and_huge_bodies_are_a_400(site: Any) -> None:
    headers = site.sup | {"Content-Type": "application/json"}
    assert (
        await site.client.post("/api/customers/c1/notes", data=b"{not json", headers=headers)
    ).status == 400
    assert (await site.client.post("/api/customers/c1/notes", data=b"[1]", headers=headers)).status == 400
    huge = b'{"text": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert (await site.client.post("/api/customers/c1/notes", data=huge, headers=headers)).status == 400
    assert _count(site, CustomerNote) == 0


async def test_a_failed_write_stores_nothing_half_way(site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step is stored, then setting the case's status fails: one transaction, so neither is kept."""
    from ctid.customers import writes
    from ctid.customers.forms import FormError

    created = await site.client.post("/api/customers/c1/cases", json={"subject": "s"}, headers=site.sup)
    case_id = (await created.json())["case_id"]

    def broken(case: Any, status: Any, at: Any) -> None:
        raise FormError({"status": "refused"})

    monkeypatch.setattr(writes, "_set_status", broken)
    response = await site.client.post(
        f"/api/customers/c1/cases/{case_id}/steps", json={"done": "x", "status": "resolved"}, headers=site.sup
    )
    assert response.status == 422
    cases = await (await site.client.get("/api/customers/c1/cases", headers=site.sup)).json()
    assert cases["cases"][0]["steps"] == [] and cases["cases"][0]["status"] == "open"


async def test_the_agent_who_took_the_call_disposes_it(site: Any) -> None:
    await _call_from_c1(site)
    assert (
        await site.client.post("/api/calls/L1/disposition", json={"code": "resolved"}, headers=site.a2)
    ).status == 403
    unknown = await site.client.post("/api/calls/L1/disposition", json={"code": "sold"}, headers=site.a1)
    assert unknown.status == 422 and "code" in (await unknown.json())["errors"]
    done = await site.client.post("/api/calls/L1/disposition", json={"code": "resolved"}, headers=site.a1)
    assert done.status == 201
    event = _published(site)[-1]
    assert isinstance(event, d.CallDisposed)
    assert (event.call, event.customer, event.for_agent, event.code, event.user) == (
        "L1",
        "c1",
        "a1",
        "resolved",
        "ann",
    )
    history = await (await site.client.get("/api/customers/c1", headers=site.a1)).json()
    assert history["calls"][0]["disposition"] == "resolved"
    # a supervisor disposes for the agent they name
    assert (
        await site.client.post("/api/calls/L1/disposition", json={"code": "follow-up"}, headers=site.sup)
    ).status == 422
    by_sup = await site.client.post(
        "/api/calls/L1/disposition", json={"code": "follow-up", "agent": "a1"}, headers=site.sup
    )
    assert by_sup.status == 201
    history = await (await site.client.get("/api/customers/c1", headers=site.sup)).json()
    assert history["calls"][0]["disposition"] == "follow-up"


async def test_a_disposition_chosen_before_the_row_is_written_lands_on_it(site: Any) -> None:
    site.bus.publish("pbx1", customer_call("L7", "c1", "PJSIP/1001", site.clock.now()))  # not flushed yet
    assert (
        await site.client.post("/api/calls/L7/disposition", json={"code": "resolved"}, headers=site.a1)
    ).status == 201
    assert _count(site, CallDisposition) == 1 and _count(site, CustomerCall) == 0
    assert await site.customers.writer.flush()
    history = await (await site.client.get("/api/customers/c1", headers=site.sup)).json()
    assert [(c["linkedid"], c["disposition"]) for c in history["calls"]] == [("L7", "resolved")]
