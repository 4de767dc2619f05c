"""Routing as a ctid component: the ACD fed by the bus, routing.yaml with its versions, and their HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from ctid.agents import SETTABLE, AgentState, AgentStateError
from ctid.agents.component import AgentsComponent
from ctid.auth import Role
from ctid.bus import ROUTING, Subscriber
from ctid.component import Component, Context, Route
from ctid.customers.component import CustomersComponent
from ctid.web import json_body
from routing.config import RoutingConfig
from routing.service import RoutingService
from routing.versions import RoutingConfigManager

if TYPE_CHECKING:
    pass

log = structlog.get_logger("routing.component")


def routing_component(ctx: Context) -> RoutingComponent | None:
    """ctid as the ACD when ctid.yaml names a routing file (ConfigError if it is invalid); else off."""
    if ctx.config.routing is None:
        return None
    return RoutingComponent(ctx, Path(ctx.config.routing))


class RoutingComponent(Component):
    name = ROUTING

    def __init__(self, ctx: Context, path: Path) -> None:
        self.clock = ctx.clock
        agents = ctx.find(AgentsComponent)  # publishes and saves what routing changes in the shared book
        self._service: RoutingService | None = None
        executor = ctx.executor

        def apply(cfg: RoutingConfig) -> None:
            if self._service is None:
                self._service = RoutingService(
                    cfg,
                    ctx.agents,  # routing.yaml configures its agents
                    executor.execute,
                    ctx.clock,
                    flush_agents=None if agents is None else agents.flush,
                )
            else:
                self._service.apply_config(cfg)

        self.versions = RoutingConfigManager(path, apply, engine=ctx.engine, clock=ctx.clock.now)
        self.versions.load_initial()
        assert self._service is not None
        self.service: RoutingService = self._service
        ctx.queue_for = self.queue_for
        ctx.pause_reasons = lambda: self.service.cfg.pause_reasons
        ctx.crm_url_for = lambda queue: q.crm_url if (q := self.service.cfg.queues.get(queue)) else ""
        customers = ctx.find(CustomersComponent)
        if customers is not None:  # callers identified by the IVR: their value figures feed priorities
            self.service.values = customers.values
            customers.route_with(
                self.queue_for,
                lambda: self.service.cfg.tiers.default_tier,
                lambda: self.service.cfg.dispositions,
            )
        self._watch_stop: asyncio.Event = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._reloads: set[asyncio.Task[Any]] = set()  # SIGHUP reloads under way

    def queue_for(self, dnis: str, asked: str) -> str:
        """The queue a caller waits in: the one the dialplan asked for, else their dialled number's."""
        return self.service.cfg.queue_for_contact(dnis, asked)

    def subscriptions(self) -> Sequence[Subscriber]:
        return (self.service.on_event,)

    # ---- lifecycle --------------------------------------------------------------------------------

    def started(self) -> None:
        self.service.start()
        self._watch_stop.clear()
        self._watcher = asyncio.get_running_loop().create_task(self.versions.watch(self._watch_stop))

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watch_stop.set()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await asyncio.gather(*self._reloads, return_exceptions=True)
        await self.service.stop()

    def reload(self, source: str) -> None:
        """Re-read routing.yaml in the background (SIGHUP): parsed in a thread, applied on the loop."""
        task = asyncio.get_running_loop().create_task(self.versions.reload_async(source))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def refresh_metrics(self) -> None:
        self.service.export_metrics()

    def routes(self) -> Sequence[Route]:
        return RoutingApi(self.service, self.versions).routes()


class RoutingApi:
    """Routing's HTTP API: live queues, agents' own state changes, routing.yaml's versions (read by
    supervisors, reloaded and rolled back by admins)."""

    def __init__(self, service: RoutingService, versions: RoutingConfigManager) -> None:
        self.service = service
        self.versions = versions

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/api/queues", self.api_queues, Role.SUPERVISOR),
            Route("POST", "/api/agents/{agent_id}/state", self.api_agent_state, Role.AGENT, own="agent_id"),
            Route("POST", "/api/routing/reload", self.api_reload, Role.ADMIN),
            Route("POST", "/api/routing/rollback", self.api_rollback, Role.ADMIN),
            Route("GET", "/api/routing/history", self.api_history, Role.SUPERVISOR),
            Route("GET", "/api/routing/config", self.api_config, Role.SUPERVISOR),
        )

    async def api_queues(self, request: web.Request) -> web.Response:
        return web.json_response(self.service.queues())

    async def api_agent_state(self, request: web.Request) -> web.Response:
        """POST {"state": "ready" | "paused" | "logged_out", "reason": "break"} for one agent."""
        try:
            body = await json_body(request)
            status = AgentState(body["state"])
            reason = str(body.get("reason", ""))
        except (ValueError, KeyError, TypeError):
            states = ", ".join(s.value for s in SETTABLE)
            raise web.HTTPBadRequest(
                text=f'send {{"state": one of {states}, "reason": for a pause}}'
            ) from None
        agent_id = request.match_info["agent_id"]
        if agent_id not in self.service.book.agents:
            raise web.HTTPNotFound(text=f"no agent {agent_id}")
        try:
            return web.json_response(self.service.set_agent_state(agent_id, status, reason))
        except AgentStateError as exc:
            raise web.HTTPConflict(text=str(exc)) from None

    async def api_reload(self, request: web.Request) -> web.Response:
        """Re-read routing.yaml: 200 with the version applied, 422 with every error if it is rejected."""
        result = await self.versions.reload_async("api")  # parsed off the loop: /healthz keeps answering
        return web.json_response(result.to_dict(), status=200 if result.ok else 422)

    async def api_rollback(self, request: web.Request) -> web.Response:
        result = await self.versions.rollback_async()
        return web.json_response(result.to_dict(), status=200 if result.ok else 409)

    async def api_history(self, request: web.Request) -> web.Response:
        """Applied versions, newest first; `?at=EPOCH` gives the one in force at that time."""
        at = request.query.get("at")
        if at is None:
            return web.json_response(self.versions.history())
        try:
            found = self.versions.version_at(float(at))
        except ValueError:
            raise web.HTTPBadRequest(text="at is seconds since the epoch") from None
        if found is None:
            raise web.HTTPNotFound(text="no version was in force then")
        return web.json_response(found)

    async def api_config(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.versions.current_version, "text": self.versions.text()})
