"""ctid's HTTP side: health, Prometheus metrics, the live call and agent views as JSON, and the routes the
components mount (`ctid.component.Route`), all behind the auth component's gate, with the one reader of
JSON bodies they all use."""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ctid.auth.policy import Role, User
from ctid.component import Route

if TYPE_CHECKING:
    from ctid.config import TlsFiles
    from ctid.daemon import Ctid

CTID_KEY = web.AppKey("ctid", object)
USER = web.RequestKey("user", User)  # who is asking: set by the auth component's gate on every request
log = structlog.get_logger("ctid.web")


def _ctid(request: web.Request) -> Ctid:
    return request.app[CTID_KEY]  # type: ignore[return-value]


async def healthz(request: web.Request) -> web.Response:
    health = _ctid(request).health()
    return web.json_response(health, status=200 if health["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    ctid = _ctid(request)
    ctid.calls()  # refresh the call gauges
    for component in ctid.components:
        component.refresh_metrics()
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


STATIC = Path(__file__).resolve().parent / "static"


def make_app(ctid: Ctid) -> web.Application:
    """ctid's own routes (health, metrics, the live calls and agents), then every component's, mounted by
    the auth component under their policies. The live views are the supervisors': every caller's number."""
    from ctid.auth.component import AuthComponent

    auth = next((c for c in ctid.components if isinstance(c, AuthComponent)), None)
    if auth is None:
        raise LookupError("ctid serves HTTP only behind its auth component")
    app = web.Application()
    app[CTID_KEY] = ctid
    own = (
        Route("GET", "/healthz", healthz, Role.PUBLIC),
        Route("GET", "/metrics", metrics, Role.PUBLIC if auth.settings.metrics_public else Role.SUPERVISOR),
        Route("GET", "/api/calls", api_calls, Role.SUPERVISOR),
        Route("GET", "/api/calls/history", api_history, Role.SUPERVISOR),
        Route("GET", "/api/calls/{linkedid}", api_call, Role.SUPERVISOR),
        Route("GET", "/api/agents", api_agents, Role.SUPERVISOR),
    )
    auth.mount(app, [*own, *(route for component in ctid.components for route in component.routes())])
    return app


async def start_web(ctid: Ctid, host: str, port: int, tls: TlsFiles | None = None) -> tuple[Any, int]:
    """Serve `make_app` on host:port, over TLS with `tls`'s certificate and key when given."""
    runner = web.AppRunner(make_app(ctid), access_log=None)
    await runner.setup()
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    bound = port
    server: Any = site._server  # the bound port when 0 was asked for
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    return runner, bound
