"""ctid's HTTP side: health, Prometheus metrics, and the live call and agent views as JSON."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from routing.agents import SETTABLE, AgentStateError
from routing.model import AgentStatus

if TYPE_CHECKING:
    from ctid.daemon import Ctid
    from reports.wallboard import Wallboard
    from routing.service import RoutingService
    from routing.versions import RoutingConfigManager

CTID_KEY = web.AppKey("ctid", object)
REPORTS_AT_ONCE = 2  # reports computed together, each in its own worker thread; others wait their turn
REPORT_SLOTS = web.AppKey("report_slots", asyncio.Semaphore)
log = structlog.get_logger("ctid.web")


def _ctid(request: web.Request) -> Ctid:
    return request.app[CTID_KEY]  # type: ignore[return-value]


async def healthz(request: web.Request) -> web.Response:
    health = _ctid(request).health()
    return web.json_response(health, status=200 if health["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    ctid = _ctid(request)
    ctid.calls()  # refresh the call gauges
    if ctid.wallboard is not None:
        ctid.wallboard.snapshot()  # and today's service level and abandon rate
    if ctid.routing is not None:
        ctid.routing.export_metrics()
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def api_calls(request: web.Request) -> web.Response:
    return web.json_response(_ctid(request).calls())


async def api_call(request: web.Request) -> web.Response:
    call = _ctid(request).call(request.match_info["linkedid"])
    if call is None:
        raise web.HTTPNotFound(text="no such call")
    return web.json_response(call)


async def api_history(request: web.Request) -> web.Response:
    return web.json_response(_ctid(request).history())


async def api_agents(request: web.Request) -> web.Response:
    return web.json_response(_ctid(request).agents())


MAX_JSON_BODY = 64 * 1024
MAX_JSON_DEPTH = 32
# a string (to its closing quote, or to the end when unclosed: never a failed match, so the scan is linear)
# or a bracket
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object, or a 400 saying why not: larger than `MAX_JSON_BODY`, not
    UTF-8, not JSON, nested deeper than `MAX_JSON_DEPTH`, or not an object. Every JSON body is read here."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise web.HTTPBadRequest(text=f"the body is over the limit of {MAX_JSON_BODY} bytes")
    data = bytearray()
    while chunk := await request.content.read(MAX_JSON_BODY + 1 - len(data)):
        data += chunk
        if len(data) > MAX_JSON_BODY:
            raise web.HTTPBadRequest(text=f"the body is over the limit of {MAX_JSON_BODY} bytes")
    try:
        text = data.decode("utf-8")
        if _json_depth(text) > MAX_JSON_DEPTH:
            raise web.HTTPBadRequest(text=f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body is not a JSON object")
    return body


def _json_depth(text: str) -> int:
    """How deep arrays and objects nest in `text`, brackets inside strings aside (counted before parsing,
    so a deep body never reaches the parser's recursion), in one linear scan."""
    depth = deepest = 0
    for token in _JSON_TOKENS.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _routing(request: web.Request) -> RoutingService:
    routing = _ctid(request).routing
    if routing is None:
        raise web.HTTPNotFound(text="routing is off: no routing file in ctid.yaml")
    return routing


async def api_queues(request: web.Request) -> web.Response:
    return web.json_response(_routing(request).queues())


async def api_agent_state(request: web.Request) -> web.Response:
    """POST {"state": "ready" | "paused" | "logged_out", "reason": "break"} for one agent."""
    routing = _routing(request)
    try:
        body = await json_body(request)
        status = AgentStatus(body["state"])
        reason = str(body.get("reason", ""))
    except (ValueError, KeyError, TypeError):
        states = ", ".join(s.value for s in SETTABLE)
        raise web.HTTPBadRequest(text=f'send {{"state": one of {states}, "reason": for a pause}}') from None
    agent_id = request.match_info["agent_id"]
    if agent_id not in routing.book.agents:
        raise web.HTTPNotFound(text=f"no agent {agent_id}")
    try:
        return web.json_response(routing.set_agent_state(agent_id, status, reason))
    except AgentStateError as exc:
        raise web.HTTPConflict(text=str(exc)) from None


def _versions(request: web.Request) -> RoutingConfigManager:
    manager = _ctid(request).routing_config
    if manager is None:
        raise web.HTTPNotFound(text="routing is off: no routing file in ctid.yaml")
    return manager


async def api_routing_reload(request: web.Request) -> web.Response:
    """Re-read routing.yaml: 200 with the version applied, 422 with every error if it is rejected."""
    result = await _versions(request).reload_async("api")  # parsed off the loop: /healthz keeps answering
    return web.json_response(result.to_dict(), status=200 if result.ok else 422)


async def api_routing_rollback(request: web.Request) -> web.Response:
    result = await _versions(request).rollback_async()
    return web.json_response(result.to_dict(), status=200 if result.ok else 409)


async def api_routing_history(request: web.Request) -> web.Response:
    """Applied versions, newest first; `?at=EPOCH` gives the one in force at that time."""
    manager = _versions(request)
    at = request.query.get("at")
    if at is None:
        return web.json_response(manager.history())
    try:
        found = manager.version_at(float(at))
    except ValueError:
        raise web.HTTPBadRequest(text="at is seconds since the epoch") from None
    if found is None:
        raise web.HTTPNotFound(text="no version was in force then")
    return web.json_response(found)


async def api_routing_config(request: web.Request) -> web.Response:
    manager = _versions(request)
    return web.json_response({"version": manager.current_version, "text": manager.text()})


async def api_report(request: web.Request) -> web.Response:
    """GET /api/reports/NAME?from=&to=&queue=&agent=&interval=&format=json|html|csv: as `ctid report`.

    The report is computed and rendered in a worker thread, at most `REPORTS_AT_ONCE` at a time, and
    `run_report` refuses one over its bounds (rows, period) with a 400 that states the limit."""
    from reports.report import FORMATS, ReportError, check_request

    ctid = _ctid(request)
    query = request.query
    name = request.match_info["name"]
    now = ctid.clock.now()
    timezone = query.get("timezone", ctid.config.wallboard.timezone)
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
            request.app[REPORT_SLOTS],
            functools.partial(
                _report_body,
                name,
                fmt,
                ctid.interaction_log.engine,
                **options,
                settings=ctid.wallboard.settings if ctid.wallboard is not None else None,
                targets=ctid.config.reports.target_bounds(),
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
    content_type = {"json": "application/json", "html": "text/html", "csv": "text/csv"}.get(fmt, "text/plain")
    return web.Response(text=body, content_type=content_type)


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
    return _dumps(result) if fmt == "json" else render(name, result, fmt, options["timezone"])


STATIC = Path(__file__).resolve().parent / "static"


async def wallboard_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "wallboard.html")


async def wallboard_socket(request: web.Request) -> web.WebSocketResponse:
    """One viewer: the current snapshot at once, then every change the wallboard pushes."""
    board = _wallboard(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=8)
    board.viewers.add(queue)
    try:
        await ws.send_str(board.first_message())
        while not ws.closed:
            getter = asyncio.ensure_future(queue.get())
            closer = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await ws.send_str(getter.result())
            else:
                getter.cancel()
            if closer in done:
                if closer.result().type in (
                    WSMsgType.CLOSE,
                    WSMsgType.CLOSING,
                    WSMsgType.CLOSED,
                    WSMsgType.ERROR,
                ):
                    break
            else:
                closer.cancel()
    finally:
        board.viewers.discard(queue)
    return ws


async def api_wallboard(request: web.Request) -> web.Response:
    return web.json_response(_wallboard(request).snapshot(), dumps=_dumps)


async def api_worklist_mark(request: web.Request) -> web.Response:
    """POST {"action": "handled" | "callback"}: a supervisor dealt with an abandoned caller."""
    board = _wallboard(request)
    body = await json_body(request)
    try:
        action = str(body["action"])
        marked = board.mark(request.match_info["item_id"], action)
    except KeyError:
        raise web.HTTPNotFound(text="no such worklist entry") from None
    except (ValueError, TypeError):
        raise web.HTTPBadRequest(text='send {"action": "handled"} or {"action": "callback"}') from None
    item = board.worklist[marked.linkedid]  # held here: a midnight roll on publishing may clear the list
    _ctid(request).bus.publish("", [marked])  # logged (it outlives a restart) and applied by the wallboard
    return web.json_response(asdict(item))


def _wallboard(request: web.Request) -> Wallboard:
    board = _ctid(request).wallboard
    if board is None:
        raise web.HTTPNotFound(text="the wallboard needs routing (a routing file in ctid.yaml)")
    return board


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def make_app(ctid: Ctid) -> web.Application:
    app = web.Application()
    app[CTID_KEY] = ctid
    app[REPORT_SLOTS] = asyncio.Semaphore(REPORTS_AT_ONCE)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/calls", api_calls)
    app.router.add_get("/api/calls/history", api_history)
    app.router.add_get("/api/calls/{linkedid}", api_call)
    app.router.add_get("/api/agents", api_agents)
    app.router.add_post("/api/agents/{agent_id}/state", api_agent_state)
    app.router.add_get("/api/queues", api_queues)
    app.router.add_post("/api/routing/reload", api_routing_reload)
    app.router.add_post("/api/routing/rollback", api_routing_rollback)
    app.router.add_get("/api/routing/history", api_routing_history)
    app.router.add_get("/api/routing/config", api_routing_config)
    app.router.add_get("/api/reports/{name}", api_report)
    app.router.add_get("/wallboard", wallboard_page)
    app.router.add_get("/ws/wallboard", wallboard_socket)
    app.router.add_get("/api/wallboard", api_wallboard)
    app.router.add_post("/api/wallboard/worklist/{item_id}", api_worklist_mark)
    return app


async def start_web(ctid: Ctid, host: str, port: int) -> tuple[Any, int]:
    runner = web.AppRunner(make_app(ctid), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server: Any = site._server  # the bound port when 0 was asked for
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    return runner, bound
