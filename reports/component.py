"""Reports as ctid components: the interaction log every event is written to with the reports API over it
(`ReportsComponent`), and the supervisors' live wallboard (`WallboardComponent`)."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from ctid.agents import AgentBook
from ctid.auth import Role
from ctid.bus import WALLBOARD, EventBus, Subscriber
from ctid.clock import Clock
from ctid.component import Component, Context, Route, Ticker
from ctid.config import WallboardSettings
from ctid.push import WALLBOARD_TOPIC, Kind, PushHub, serve
from ctid.web import STATIC, USER, json_body
from reports.log import InteractionLog
from reports.wallboard import Thresholds, Wallboard

if TYPE_CHECKING:
    from routing.service import RoutingService

log = structlog.get_logger("reports.component")
CONTENT_TYPES = {"json": "application/json", "html": "text/html", "csv": "text/csv"}
REPORTS_AT_ONCE = 2  # reports computed together, each in its own worker thread; others wait their turn


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class ReportsComponent(Component):
    """The interaction log (opened and closed with ctid, fed every domain event) and `/api/reports/NAME`."""

    name = "reports"

    def __init__(self, ctx: Context, interaction_log: InteractionLog) -> None:
        self.log = interaction_log
        self.clock = ctx.clock
        self.settings = ctx.config.reports
        self.timezone = ctx.config.wallboard.timezone
        self.kpi_settings: Callable[[], Any] = lambda: None  # the wallboard's, when there is one
        self.slots = asyncio.Semaphore(REPORTS_AT_ONCE)

    def subscriptions(self) -> Sequence[Subscriber]:
        return (self.log.record,)

    async def start(self) -> None:
        await self.log.start()

    async def close(self) -> None:
        await self.log.close()

    def routes(self) -> Sequence[Route]:
        return (Route("GET", "/api/reports/{name}", self.api_report, Role.SUPERVISOR),)

    async def api_report(self, request: web.Request) -> web.Response:
        """GET /api/reports/NAME?from=&to=&queue=&agent=&interval=&format=json|html|csv: as `ctid report`.

        The report is computed and rendered in a worker thread, at most `REPORTS_AT_ONCE` at a time, and
        `run_report` refuses one over its bounds (rows, period) with a 400 that states the limit."""
        from reports.report import FORMATS, ReportError, check_request

        now = self.clock.now()
        query = request.query
        name = request.match_info["name"]
        timezone = query.get("timezone", self.timezone)
        fmt = query.get("format", "json")
        if fmt not in FORMATS:
            raise web.HTTPBadRequest(text=f"format is one of {', '.join(FORMATS)}")
        try:
            # as `ctid report`: from the local midnight of the report's time zone, to now
            zone = ZoneInfo(timezone)
            midnight = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
            start = float(query.get("from", midnight.timestamp()))
            end = float(query.get("to", now))
            interval_s = float(query.get("interval", 30)) * 60
            options: dict[str, Any] = {
                "start": start,
                "end": end,
                "queue": query.get("queue"),
                "agent": query.get("agent"),
                "interval_s": interval_s,
                "timezone": timezone,
            }
            check_request(name, **options)  # a request over the bounds is refused at once, without a slot
            body = await _in_report_slot(
                self.slots,
                functools.partial(
                    _report_body,
                    name,
                    fmt,
                    self.log.engine,
                    **options,
                    settings=self.kpi_settings(),
                    targets=self.settings.target_bounds(),
                ),
            )
        except ReportError as exc:
            log.info("report_refused", report=name, reason=str(exc))
            raise (
                web.HTTPNotFound(text=str(exc))
                if "unknown report" in str(exc)
                else web.HTTPBadRequest(text=str(exc))
            ) from None
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"from/to are epoch seconds, interval minutes: {exc}") from None
        return web.Response(text=body, content_type=CONTENT_TYPES.get(fmt, "text/plain"))


async def _in_report_slot(slots: asyncio.Semaphore, job: Callable[[], str]) -> str:
    """Run `job` in a worker thread once one of the report slots is free. The slot is given back when the
    thread ends, not when the request does: a client that hangs up cannot start more reports than slots."""
    await slots.acquire()
    running = asyncio.ensure_future(asyncio.to_thread(job))

    def done(finished: asyncio.Future[str]) -> None:
        slots.release()
        if not finished.cancelled():
            finished.exception()  # retrieved, so a refusal nobody waits for any more is not logged as lost

    running.add_done_callback(done)
    return await asyncio.shield(running)


def _report_body(name: str, fmt: str, source: Any, **options: Any) -> str:
    """One report computed and rendered: all of it in the worker thread, none on the event loop."""
    from reports.report import render, run_report

    result = run_report(name, source, **options)
    return dumps(result) if fmt == "json" else render(name, result, fmt, options["timezone"])


# ---- the wallboard --------------------------------------------------------------------------------------


def wallboard_component(ctx: Context) -> WallboardComponent | None:
    """The wallboard over routing's live queues and agents; off without routing."""
    from routing.component import RoutingComponent

    routing = ctx.find(RoutingComponent)
    if routing is None:
        return None
    board = make_wallboard(ctx.config.wallboard, routing.service, ctx.agents, ctx.clock)
    reports = ctx.find(ReportsComponent)
    if reports is not None:
        reports.kpi_settings = lambda: board.settings
    ctx.handled_today = board.handled_today
    return WallboardComponent(ctx, board)


def make_wallboard(
    settings: WallboardSettings, service: RoutingService, agents: AgentBook, clock: Clock
) -> Wallboard:
    """The wallboard over routing's live queues and the agent book, coloured by ctid.yaml's thresholds."""
    from reports.kpi import KpiSettings

    service_level_s = {name: q.service_level.threshold_s for name, q in service.cfg.queues.items()}
    return Wallboard(
        views=lambda: (service.queues(), agents.listing(clock.now())),
        clock=clock.now,
        timezone=settings.timezone,
        thresholds={
            "longest_wait_s": Thresholds(settings.longest_wait_s.warn, settings.longest_wait_s.alarm),
            "waiting": Thresholds(settings.waiting.warn, settings.waiting.alarm),
            "abandon_rate": Thresholds(settings.abandon_rate.warn, settings.abandon_rate.alarm),
            "service_level": Thresholds(
                settings.service_level.warn, settings.service_level.alarm, higher_is_worse=False
            ),
        },
        settings=KpiSettings(short_abandon_s=settings.short_abandon_s, service_level_s=service_level_s),
    )


class WallboardComponent(Component):
    """Today's figures per queue, the agent grid and the worklist, pushed to supervisors' browsers."""

    name = WALLBOARD

    def __init__(self, ctx: Context, board: Wallboard) -> None:
        self.board = board
        self.clock = ctx.clock
        self.engine = ctx.engine
        self.hub = ctx.hub
        self.api = WallboardApi(board, ctx.bus, ctx.hub)
        self.ticker = Ticker(WALLBOARD, board.interval_s / 2, self.push)

    def subscriptions(self) -> Sequence[Subscriber]:
        return (self.board.on_event,)

    async def start(self) -> None:
        """Today's figures survive a restart: the wallboard takes up today's contacts from the store, and
        its worklist and calls handled from the log."""
        from reports.log import load_events
        from reports.store import DAY_S, contacts_since
        from reports.wallboard import FOLLOWED

        def load() -> tuple[list[Any], list[dict[str, Any]]]:
            since = self.clock.now() - DAY_S
            with self.engine.connect() as connection:
                contacts = contacts_since(connection, since)
            return contacts, load_events(self.engine, since, math.inf, kinds=FOLLOWED)

        try:
            taken = self.board.resume(*await asyncio.to_thread(load))
        except SQLAlchemyError as exc:  # the database is away: today starts from what comes now
            log.warning("wallboard_resume_failed", error=type(exc).__name__)
        else:
            log.info("wallboard_resumed", contacts=taken)

    def started(self) -> None:
        self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()

    def refresh_metrics(self) -> None:
        self.board.snapshot()  # today's service level and abandon rate

    def routes(self) -> Sequence[Route]:
        return self.api.routes()

    def push(self) -> None:
        """A tick: the wallboard's fresh snapshot, if due, to its topic's viewers (none watching, no work)."""
        if self.hub.subscribers(WALLBOARD_TOPIC):
            message = self.board.tick(asyncio.get_running_loop().time())
            if message is not None:
                self.hub.publish(WALLBOARD_TOPIC, message)


class WallboardApi:
    """The wallboard's page, its live socket (the hub's `wallboard` topic, registered here), its snapshot as
    JSON, and the worklist's marks."""

    def __init__(self, board: Wallboard, bus: EventBus, hub: PushHub) -> None:
        self.board = board
        self.bus = bus
        self.hub = hub
        hub.topic(WALLBOARD_TOPIC, Kind.SNAPSHOT, snapshot=lambda _: board.first_message())

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/wallboard", self.page, Role.SUPERVISOR),
            Route("GET", "/ws/wallboard", self.socket, Role.SUPERVISOR),
            Route("GET", "/api/wallboard", self.api_snapshot, Role.SUPERVISOR),
            Route("POST", "/api/wallboard/worklist/{item_id}", self.api_mark, Role.SUPERVISOR),
        )

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "wallboard.html")

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        """One viewer: the current snapshot at once, then every change the wallboard pushes."""
        return await serve(request, self.hub, WALLBOARD_TOPIC)

    async def api_snapshot(self, request: web.Request) -> web.Response:
        return web.json_response(self.board.snapshot(), dumps=dumps)

    async def api_mark(self, request: web.Request) -> web.Response:
        """POST {"action": "handled" | "callback"}: a supervisor dealt with an abandoned caller (the mark
        names them)."""
        body = await json_body(request)
        try:
            action = str(body["action"])
            marked = self.board.mark(request.match_info["item_id"], action)
        except KeyError:
            raise web.HTTPNotFound(text="no such worklist entry") from None
        except (ValueError, TypeError):
            raise web.HTTPBadRequest(text='send {"action": "handled"} or {"action": "callback"}') from None
        item = self.board.worklist[marked.linkedid]  # held here: a midnight roll on publishing may clear it
        # logged (it outlives a restart) and applied by the wallboard
        self.bus.publish(WALLBOARD, [replace(marked, by=request[USER].name)])
        return web.json_response(asdict(item))
