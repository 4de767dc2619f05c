"""Screen pops as a ctid component: the pop book fed by the bus, customer data loaded off the loop, each
agent's pops pushed to their own topic (`pop:<agent id>`, whose snapshot is the current pop), and the agent
desktop's page, socket and routes. A write to a customer's history loads it again for every pop showing
them. Agents are known by their login, never by an id in the URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctid.agents import AgentBook
from ctid.auth import Role
from ctid.bus import Subscriber
from ctid.clock import Clock
from ctid.commands import SetVariable
from ctid.component import Component, Context, Route
from ctid.customers.book import Customer
from ctid.customers.component import CustomersComponent
from ctid.dialplan import CUSTOMER_VAR
from ctid.push import AGENT_TOPIC, Kind, PushHub, serve
from ctid.state import domain as d
from ctid.web import STATIC, USER, json_body
from screenpop.data import load_pop_data
from screenpop.pops import Decision, PopBook, PopMessage, Prefetch, pop_message

log = structlog.get_logger("screenpop")

POP_TOPIC = "pop:"  # the prefix of each agent's pop topic, `pop:<agent id>`
MAX_NOTE_CHARS = 2000

Loader = Callable[[Engine, str, str], dict[str, Any]]


def screenpop_component(ctx: Context) -> ScreenpopComponent | None:
    """Pops for the agents routing.yaml configures; off without routing (no agents to pop for)."""
    if ctx.config.routing is None:
        return None
    return ScreenpopComponent(ctx)


class ScreenpopComponent(Component):
    name = "screenpop"

    def __init__(self, ctx: Context, load: Loader = load_pop_data) -> None:
        self.agents: AgentBook = ctx.agents
        self.hub: PushHub = ctx.hub
        self.engine = ctx.engine
        self.clock: Clock = ctx.clock
        self.pause_reasons = ctx.pause_reasons
        self.handled_today = ctx.handled_today
        self.executor = ctx.executor
        customers = ctx.find(CustomersComponent)
        self.dispositions: Callable[[], tuple[str, ...]] = (
            (lambda: customers.dispositions()) if customers is not None else tuple
        )
        self.book = PopBook(crm_template=ctx.crm_url_for)
        self.load = load
        self._loads: set[asyncio.Task[None]] = set()
        self._asked = 0  # loads asked for so far; a call's data comes from the last one asked for it
        self._latest: dict[str, int] = {}  # linkedid -> the number of its load under way
        self.hub.topic(POP_TOPIC, Kind.EVENTS, snapshot=self._snapshot)

    def subscriptions(self) -> Sequence[Subscriber]:
        return (self.on_event,)

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/agent", self.page, Role.AGENT),
            Route("GET", "/ws/agent", self.socket, Role.AGENT),
            Route("GET", "/api/desktop", self.api_desktop, Role.AGENT),
            Route("POST", "/api/pops/{linkedid}/transfer-note", self.api_transfer_note, Role.AGENT),
            Route("POST", "/api/pops/{linkedid}/dismiss", self.api_dismiss, Role.AGENT),
            Route("POST", "/api/pops/{linkedid}/customer", self.api_link_customer, Role.AGENT),
        )

    async def stop(self) -> None:
        for task in list(self._loads):
            task.cancel()
        await asyncio.gather(*self._loads, return_exceptions=True)

    def on_event(self, origin: str, event: d.DomainEvent) -> None:
        self._carry_out(self.book.apply(event, origin))

    def _carry_out(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Prefetch):
                self._asked += 1
                self._latest[decision.linkedid] = self._asked
                task = asyncio.get_running_loop().create_task(self._prefetch(decision, self._asked))
                self._loads.add(task)
                task.add_done_callback(self._loads.discard)
            else:
                self._push(decision)

    def _push(self, message: PopMessage) -> None:
        agent = self.agents.by_device.get(message.device)
        if agent is None:  # a device no configured agent has: nobody's desktop
            return
        self.hub.publish(POP_TOPIC + agent.agent_id, json.dumps(pop_message(message)))

    async def _prefetch(self, prefetch: Prefetch, number: int) -> None:
        try:
            data = await asyncio.to_thread(self.load, self.engine, prefetch.customer, prefetch.caller_num)
        except Exception as exc:  # the pop shows what is known without the customer's data
            log.warning("pop_data_failed", linkedid=prefetch.linkedid, error=str(exc) or type(exc).__name__)
            data = {"customer": None, "found_by": "", "open_cases": [], "failed": True}
        if (
            self._latest.get(prefetch.linkedid) != number
        ):  # a later write's load has (or will have) newer data
            return
        del self._latest[prefetch.linkedid]
        self._carry_out(self.book.loaded(prefetch.linkedid, data))

    def _snapshot(self, topic: str) -> str | None:
        agent = self.agents.agents.get(topic.removeprefix(POP_TOPIC))
        pop = self.book.current(agent.device) if agent is not None else None
        return json.dumps({"kind": "PopOpened", "pop": pop.to_dict()}) if pop is not None else None

    def _agent_id(self, request: web.Request) -> str:
        """The logged-in user's agent id; 403 for a user who is not an agent of this site."""
        agent_id = request[USER].agent_id
        if agent_id not in self.agents.agents:
            raise web.HTTPForbidden(text="this login is not an agent's")
        return agent_id

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "agent.html")

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        """The agent's own state and pops, each topic's snapshot first."""
        agent_id = self._agent_id(request)
        return await serve(request, self.hub, (AGENT_TOPIC + agent_id, POP_TOPIC + agent_id))

    async def api_desktop(self, request: web.Request) -> web.Response:
        """The desktop's start: the agent (state, time in state), today's calls handled (None without the
        wallboard), the pause reasons, the disposition codes and the current pop."""
        agent = self.agents.agents[self._agent_id(request)]
        pop = self.book.current(agent.device)
        return web.json_response(
            {
                "agent": agent.to_dict(self.clock.now()),
                "handled_today": self.handled_today(agent.device),
                "pause_reasons": list(self.pause_reasons()),
                "dispositions": list(self.dispositions()),
                "pop": pop.to_dict() if pop is not None else None,
            }
        )

    async def api_transfer_note(self, request: web.Request) -> web.Response:
        """POST {"text": ...}: a note for whoever the agent transfers the call to (their own call only)."""
        agent = self.agents.agents[self._agent_id(request)]
        linkedid = request.match_info["linkedid"]
        body = await json_body(request)
        text = body.get("text")
        if not isinstance(text, str) or len(text) > MAX_NOTE_CHARS:
            raise web.HTTPBadRequest(text=f'send {{"text": "..."}} of at most {MAX_NOTE_CHARS} characters')
        if self.book.on_call(agent.device) != linkedid:
            raise web.HTTPNotFound(text="no such call on your desktop")
        self.book.transfer_note(linkedid, agent.device, text, by=agent.name or agent.agent_id)
        return web.json_response({"linkedid": linkedid, "note": text})

    async def api_dismiss(self, request: web.Request) -> web.Response:
        """The agent is done with an ended pop."""
        agent = self.agents.agents[self._agent_id(request)]
        messages = self.book.dismiss(agent.device, request.match_info["linkedid"])
        if not messages:
            raise web.HTTPNotFound(text="no ended pop of that call on your desktop")
        self._carry_out(messages)
        return web.json_response({"dismissed": request.match_info["linkedid"]})

    async def api_link_customer(self, request: web.Request) -> web.Response:
        """POST {"customer": id}: the agent on the call links its unknown caller to a customer (409 once the
        caller is known). CTID_CUSTOMER is set
        on the caller's channel, so Asterisk's records and the customer's calls agree; the pop shows them."""
        agent = self.agents.agents[self._agent_id(request)]
        linkedid = request.match_info["linkedid"]
        body = await json_body(request)
        customer = body.get("customer")
        if not isinstance(customer, str) or not customer:
            raise web.HTTPBadRequest(text='send {"customer": "<customer id>"}')
        caller = self.book.caller_channel(linkedid)
        if self.book.on_call(agent.device) != linkedid or caller is None:
            raise web.HTTPNotFound(text="no such call on your desktop")
        if self.book.customer_of(linkedid):
            raise web.HTTPConflict(text="the caller is a known customer already")
        if not await asyncio.to_thread(self._exists, customer):
            raise web.HTTPNotFound(text="no such customer")
        server, channel = caller
        result = await self.executor.execute(server, SetVariable(channel, CUSTOMER_VAR, customer, linkedid))
        if not result.ok:
            raise web.HTTPBadGateway(text="Asterisk did not take the customer")
        log.info("caller_linked", linkedid=linkedid, agent=agent.agent_id, customer=customer)
        self._carry_out(self.book.linked(linkedid, customer))
        return web.json_response({"linkedid": linkedid, "customer": customer})

    def _exists(self, customer: str) -> bool:
        with Session(self.engine) as session:
            return session.get(Customer, customer) is not None
