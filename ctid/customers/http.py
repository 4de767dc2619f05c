"""The customer API: search, create and read customers, and write notes, quotes, cases, lifecycle stages
and call dispositions. Each request is one transaction in a worker thread; each write, once committed, is
published on the bus (origin `customers`). Agents see a customer only while on a call with them or after
one of them called the agent today (UTC); supervisors and admins see every customer. An agent on a call
from an unknown caller may search every customer, to link the caller to one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import Engine, exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ctid.auth.policy import Role, User
from ctid.bus import CUSTOMERS, EventBus
from ctid.clock import Clock
from ctid.component import Route
from ctid.customers import forms, writes
from ctid.customers.book import Customer, customer_cases
from ctid.customers.calls import CallFolder, CustomerCallWriter
from ctid.customers.forms import FormError
from ctid.customers.history import UnknownCustomer, case_dict, customer_history, customer_quotes, quote_dict
from ctid.customers.tables import CustomerCall
from ctid.state.domain import CustomerEvent
from ctid.web import USER, json_body

T = TypeVar("T")
F = TypeVar("F")


class CustomerApi:
    """The routes; `dispositions` gives routing.yaml's disposition codes as they are now."""

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        clock: Clock,
        folder: CallFolder,
        writer: CustomerCallWriter,
        dispositions: Callable[[], tuple[str, ...]],
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.clock = clock
        self.folder = folder
        self.writer = writer
        self.dispositions = dispositions

    def routes(self) -> list[Route]:
        base = "/api/customers/{customer_id}"
        return [
            Route("GET", "/api/customers", self.search, Role.AGENT),
            Route("POST", "/api/customers", self.create, Role.AGENT),
            Route("GET", base, self.history, Role.AGENT),
            Route("POST", f"{base}/notes", self.add_note, Role.AGENT),
            Route("GET", f"{base}/quotes", self.quotes, Role.AGENT),
            Route("POST", f"{base}/quotes", self.record_quote, Role.AGENT),
            Route("GET", f"{base}/cases", self.cases, Role.AGENT),
            Route("POST", f"{base}/cases", self.open_case, Role.AGENT),
            Route("POST", f"{base}/cases/{{case_id}}/steps", self.add_step, Role.AGENT),
            Route("POST", f"{base}/lifecycle", self.set_lifecycle, Role.AGENT),
            Route("POST", "/api/calls/{linkedid}/disposition", self.dispose, Role.AGENT),
        ]

    # ---- plumbing --------------------------------------------------------------------------------------

    async def _in_session(self, work: Callable[[Session], T]) -> T:
        """`work` in one transaction in a worker thread: committed if it returns, rolled back if it raises."""

        def run() -> T:
            with Session(self.engine) as session, session.begin():
                return work(session)

        try:
            return await asyncio.to_thread(run)
        except UnknownCustomer:
            raise web.HTTPNotFound(text="not found") from None
        except _ForbiddenError:
            raise web.HTTPForbidden(text="not a customer of your calls") from None
        except FormError as exc:
            raise _unprocessable(exc.errors) from None
        except SQLAlchemyError:
            raise web.HTTPServiceUnavailable(text="the customer book cannot be reached") from None

    def _seen_now(self, user: User) -> set[str] | None:
        """On the event loop: the customers an agent may see by what is in memory (their live calls, and
        today's calls not written yet); None for supervisors and admins, who see every customer."""
        if user.role is not Role.AGENT:
            return None
        if not user.agent_id:
            return set()
        since = self._midnight()
        unwritten = {
            r.customer_id
            for r in self.writer.unwritten()
            if r.agent == user.agent_id and r.arrived_at >= since
        }
        return self.folder.customers_of(user.agent_id) | unwritten

    def _on_unknown_call(self, user: User) -> bool:
        """Whether an agent is ringing for, or talking on, a live call no customer is bound to."""
        agent = user.agent_id
        return bool(agent) and any(
            not call.customer
            and (agent in call.ringing or any(p.agent == agent and p.talk_s is None for p in call.parts))
            for call in self.folder.calls.values()
        )

    def _midnight(self) -> float:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def _may_see(self, session: Session, user: User, customer_id: str, seen: set[str] | None) -> None:
        """404 for an unknown customer; 403 for an agent who may not see this one: not in `seen` (from
        `_seen_now`) and not among today's customer_calls of theirs."""
        if session.get(Customer, customer_id) is None:
            raise UnknownCustomer(customer_id)
        if seen is None or customer_id in seen:
            return
        called_today = exists().where(
            CustomerCall.customer_id == customer_id,
            CustomerCall.agent == user.agent_id,
            CustomerCall.arrived_at >= self._midnight(),
        )
        if not user.agent_id or not session.scalar(select(called_today)):
            raise _ForbiddenError

    async def _write(
        self,
        request: web.Request,
        parse: Callable[[Mapping[str, Any]], F],
        write: Callable[[Session, str, F, writes.Author, float], CustomerEvent],
    ) -> web.Response:
        user = request[USER]
        customer_id = request.match_info["customer_id"]
        form = _parsed(parse, await json_body(request))
        seen = self._seen_now(user)

        def work(session: Session) -> CustomerEvent:
            self._may_see(session, user, customer_id, seen)
            return write(
                session, customer_id, form, writes.Author(user.name, user.agent_id), self.clock.now()
            )

        return self._published(await self._in_session(work))

    def _published(self, event: CustomerEvent) -> web.Response:
        self.bus.publish(CUSTOMERS, [event])
        return web.json_response(event.to_dict(), status=201)

    # ---- handlers --------------------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        """Customers by phone, name part or account id; an agent only among customers they may see, unless
        on a call from an unknown caller."""
        q = request.query
        phone, name, account = q.get("phone", ""), q.get("name", ""), q.get("account", "")
        if not (phone or name or account):
            raise _unprocessable({"query": "give phone, name or account"})
        user = request[USER]
        seen = None if self._on_unknown_call(user) else self._seen_now(user)

        def work(session: Session) -> list[dict[str, object]]:
            found = writes.search_customers(session, phone=phone, name=name, account=account)
            return [c for c in found if self._sees(session, user, str(c["id"]), seen)]

        return web.json_response({"customers": await self._in_session(work)})

    def _sees(self, session: Session, user: User, customer_id: str, seen: set[str] | None) -> bool:
        try:
            self._may_see(session, user, customer_id, seen)
        except _ForbiddenError:
            return False
        return True

    async def create(self, request: web.Request) -> web.Response:
        user = request[USER]
        form = _parsed(forms.new_customer, await json_body(request))
        event = await self._in_session(
            lambda s: writes.create_customer(
                s, form, writes.Author(user.name, user.agent_id), self.clock.now()
            )
        )
        return self._published(event)

    async def history(self, request: web.Request) -> web.Response:
        user, customer_id = request[USER], request.match_info["customer_id"]
        seen = self._seen_now(user)

        def work(session: Session) -> dict[str, Any]:
            self._may_see(session, user, customer_id, seen)
            return customer_history(session, customer_id).to_dict()

        return web.json_response(await self._in_session(work))

    async def quotes(self, request: web.Request) -> web.Response:
        user, customer_id = request[USER], request.match_info["customer_id"]
        seen = self._seen_now(user)

        def work(session: Session) -> list[dict[str, Any]]:
            self._may_see(session, user, customer_id, seen)
            return [quote_dict(q) for q in customer_quotes(session, customer_id)]

        return web.json_response({"quotes": await self._in_session(work)})

    async def cases(self, request: web.Request) -> web.Response:
        """Every case of the customer, resolved ones too, oldest first."""
        user, customer_id = request[USER], request.match_info["customer_id"]
        seen = self._seen_now(user)

        def work(session: Session) -> list[dict[str, Any]]:
            self._may_see(session, user, customer_id, seen)
            return [case_dict(c) for c in customer_cases(session, customer_id)]

        return web.json_response({"cases": await self._in_session(work)})

    async def add_note(self, request: web.Request) -> web.Response:
        return await self._write(request, forms.note_form, writes.add_note)

    async def record_quote(self, request: web.Request) -> web.Response:
        return await self._write(request, forms.quote_form, writes.record_quote)

    async def open_case(self, request: web.Request) -> web.Response:
        return await self._write(request, forms.case_form, writes.open_case)

    async def set_lifecycle(self, request: web.Request) -> web.Response:
        return await self._write(request, forms.lifecycle_form, writes.set_lifecycle)

    async def add_step(self, request: web.Request) -> web.Response:
        try:
            case_id = int(request.match_info["case_id"])
        except ValueError:
            raise web.HTTPNotFound(text="not found") from None
        return await self._write(
            request,
            forms.step_form,
            lambda s, customer_id, form, author, now: writes.add_case_step(
                s, customer_id, case_id, form, author, now
            ),
        )

    async def dispose(self, request: web.Request) -> web.Response:
        """The disposition of an agent's part of a call: an agent's own (403 for a call they did not take);
        a supervisor's for the agent named in the body (404 for a call and agent ctid does not know)."""
        user, linkedid = request[USER], request.match_info["linkedid"]
        form = _parsed(lambda raw: forms.disposition_form(raw, self.dispositions()), await json_body(request))
        for_agent = user.agent_id if user.role is Role.AGENT else form.agent
        if not for_agent:
            raise _unprocessable({"agent": "is required: the agent whose part of the call it disposes"})
        took, customer = self.folder.took(linkedid, for_agent)

        def work(session: Session) -> CustomerEvent:
            known, owner = took, customer
            if not known:
                row = session.scalar(
                    select(CustomerCall.customer_id)
                    .where(CustomerCall.linkedid == linkedid, CustomerCall.agent == for_agent)
                    .limit(1)
                )
                known, owner = row is not None, row or ""
            if not known:
                raise _ForbiddenError if user.role is Role.AGENT else UnknownCustomer(linkedid)
            author = writes.Author(user.name, user.agent_id)
            return writes.dispose_call(session, linkedid, for_agent, owner, form, author, self.clock.now())

        return self._published(await self._in_session(work))


class _ForbiddenError(Exception):
    """An agent asked for a customer or call that is not theirs (raised inside a request's transaction)."""


def _parsed(parse: Callable[[Mapping[str, Any]], F], body: Mapping[str, Any]) -> F:
    try:
        return parse(body)
    except FormError as exc:
        raise _unprocessable(exc.errors) from None


def _unprocessable(errors: Mapping[str, str]) -> web.HTTPUnprocessableEntity:
    return web.HTTPUnprocessableEntity(
        text=json.dumps({"errors": dict(errors)}), content_type="application/json"
    )
