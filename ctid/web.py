"""ctid's HTTP side: health, Prometheus metrics, and the live call and agent views as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from ctid.daemon import Ctid

CTID_KEY = web.AppKey("ctid", object)


def _ctid(request: web.Request) -> Ctid:
    return request.app[CTID_KEY]  # type: ignore[return-value]


async def healthz(request: web.Request) -> web.Response:
    health = _ctid(request).health()
    return web.json_response(health, status=200 if health["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    _ctid(request).calls()  # refresh the call gauges
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


def make_app(ctid: Ctid) -> web.Application:
    app = web.Application()
    app[CTID_KEY] = ctid
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/calls", api_calls)
    app.router.add_get("/api/calls/history", api_history)
    app.router.add_get("/api/calls/{linkedid}", api_call)
    app.router.add_get("/api/agents", api_agents)
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
