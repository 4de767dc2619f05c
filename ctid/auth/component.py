"""Logins as a ctid component: the login page and API, logout, `/api/me`, and the one gate every request
passes (`AuthComponent.middleware`): who is asking (bearer token or session cookie), may they call the
matched route (its `Policy`), and for a cookie, does a state-changing request carry the CSRF token."""

from __future__ import annotations

import asyncio
import html
import math
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import AbstractRoute

from ctid.auth.policy import Decision, LoginThrottle, Policy, Role, Sessions, User, allowed, same_secret
from ctid.auth.store import UserStore, create_schema
from ctid.bus import AUTH
from ctid.clock import Clock
from ctid.component import Component, Context, Route
from ctid.config import WebListener
from ctid.state import domain as d
from ctid.web import USER, json_body

log = structlog.get_logger("ctid.auth")

SESSION_COOKIE = "ctid_session"
CSRF_COOKIE = "ctid_csrf"  # readable by the page's script, which sends it back in CSRF_HEADER
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def auth_component(ctx: Context) -> AuthComponent:
    ctx.add_schema(create_schema)
    return AuthComponent(UserStore(ctx.engine, ctx.clock.now), ctx.clock, ctx.bus.publish, ctx.config.web)


class AuthComponent(Component):
    name = AUTH

    def __init__(
        self,
        users: UserStore,
        clock: Clock,
        publish: Callable[[str, list[d.DomainEvent]], None],
        settings: WebListener,
    ) -> None:
        self.users = users
        self.clock = clock
        self.publish = publish
        self.settings = settings
        self.sessions = Sessions()
        self.throttle = LoginThrottle()
        self.policies: dict[AbstractRoute, Policy] = {}

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/login", self.login_page, Role.PUBLIC),
            Route("POST", "/login", self.login, Role.PUBLIC),
            Route("POST", "/logout", self.logout, Role.AGENT),
            Route("GET", "/api/me", self.me, Role.AGENT),
        )

    def mount(self, app: web.Application, routes: Sequence[Route]) -> None:
        """Add `routes` to `app`, each under its policy, behind the gate."""
        for route in routes:
            self.policies[app.router.add_route(route.method, route.path, route.handler)] = route.policy
        app.middlewares.append(self.middleware)

    # ---- the gate -------------------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:  # no such path or method: aiohttp's own 404 or 405
            return await handler(request)
        policy = self.policies.get(match.route)
        if policy is None:  # mounted around the gate: refused, never served unchecked
            log.error("route_without_policy", path=request.path)
            raise web.HTTPForbidden(text="this route has no access policy")
        user, session_csrf = self._identify(request)
        decision = allowed(user, policy, match)
        if decision is Decision.LOGIN:
            raise _login_first(request)
        if decision is Decision.FORBIDDEN:
            raise web.HTTPForbidden(text="your role may not do this")
        if (  # a browser sends the cookie with any request; only ctid's own pages know the token
            session_csrf is not None
            and policy.role is not Role.PUBLIC  # a login from a browser still holding a session
            and request.method not in SAFE_METHODS
            and not same_secret(request.headers.get(CSRF_HEADER), session_csrf)
        ):
            raise web.HTTPForbidden(text=f"a state-changing request needs the {CSRF_HEADER} header")
        if user is None:  # a public route
            return await handler(request)
        request[USER] = user
        if policy.role is not Role.ADMIN or request.method in SAFE_METHODS:
            return await handler(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            action = d.AdminAction(
                self.clock.now(), "", user.name, f"{request.method} {request.path}", "", status
            )
            self.publish(AUTH, [action])

    def _identify(self, request: web.Request) -> tuple[User | None, str | None]:
        """The user asking, and for a session cookie the session's CSRF token (None: not a cookie)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            return self.users.token_user(token.strip()), None
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None, None
        session = self.sessions.get(session_id, self.clock.now())
        if session is None:
            return None, None
        user = self.users.active(session.user)
        if user is None:  # disabled since the login
            self.sessions.close(session_id)
        return user, session.csrf

    # ---- login and logout -----------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.Response:
        return _login_html(request.query.get("next", ""), "", status=200)

    async def login(self, request: web.Request) -> web.StreamResponse:
        """POST a form (user, password, next) or JSON {"user", "password"}: a session cookie, or 401; 429
        with Retry-After while failed logins for that user or address are being slowed."""
        is_json = request.content_type == "application/json"
        fields: Any = await json_body(request) if is_json else await request.post()
        name, password = str(fields.get("user", "")), str(fields.get("password", ""))
        target = _local_path(str(fields.get("next", "")))
        address = self._address(request)
        now = self.clock.now()
        wait_s = self.throttle.wait_s(name, address, now)
        if wait_s > 0:
            self.publish(AUTH, [d.LoginFailed(now, "", name, address, "slowed")])
            log.warning("login_slowed", user=name, address=address, wait_s=round(wait_s, 1))
            raise web.HTTPTooManyRequests(
                text=f"too many failed logins: try again in {math.ceil(wait_s)} s",
                headers={"Retry-After": str(math.ceil(wait_s))},
            )
        self.throttle.failed(name, address, now)  # counted before the check: guesses sent at once wait too
        user = await asyncio.to_thread(self.users.check_password, name, password)
        if user is None:
            self.publish(AUTH, [d.LoginFailed(self.clock.now(), "", name, address, "bad_login")])
            log.info("login_failed", user=name, address=address)
            if is_json:
                raise web.HTTPUnauthorized(text="wrong user name or password")
            return _login_html(target, "Wrong user name or password.", status=401)
        self.throttle.succeeded(name, address)
        self.sessions.close(request.cookies.get(SESSION_COOKIE, ""))  # a fresh id on every login
        session_id, session = self.sessions.open(user.name, self.clock.now())
        self.publish(AUTH, [d.UserLoggedIn(self.clock.now(), "", user.name, user.role.value, address)])
        log.info("login", user=user.name, role=user.role.value, address=address)
        response: web.StreamResponse
        if is_json:
            response = web.json_response(_me(user, session.csrf))
        else:
            response = web.Response(status=303, headers={"Location": target or _home(user)})
        secure = self.settings.secure_cookies
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="Strict", secure=secure)
        response.set_cookie(CSRF_COOKIE, session.csrf, samesite="Strict", secure=secure)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        user = request[USER]
        self.sessions.close(request.cookies.get(SESSION_COOKIE, ""))
        self.publish(AUTH, [d.UserLoggedOut(self.clock.now(), "", user.name, self._address(request))])
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE)
        response.del_cookie(CSRF_COOKIE)
        return response

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response(_me(request[USER], request.cookies.get(CSRF_COOKIE, "")))

    def _address(self, request: web.Request) -> str:
        """The client's address; behind a trusted proxy, the one the proxy saw (the last it added)."""
        forwarded = request.headers.get("X-Forwarded-For", "")
        if self.settings.trusted_proxy and forwarded:
            return forwarded.rsplit(",", 1)[-1].strip()
        return request.remote or ""


def _me(user: User, csrf: str) -> dict[str, str]:
    return {"user": user.name, "role": user.role.value, "agent_id": user.agent_id, "csrf": csrf}


def _home(user: User) -> str:
    return "/agent" if user.role is Role.AGENT else "/wallboard"  # the desktop, or the wallboard


def _local_path(target: str) -> str:
    """`next` only within ctid: a path on this site, never another site's address."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else ""


def _login_first(request: web.Request) -> web.HTTPUnauthorized:
    headers = {"WWW-Authenticate": 'Bearer realm="ctid"'}
    if "text/html" in request.headers.get("Accept", ""):
        link = html.escape(f"/login?next={request.path}")
        page = f'<!doctype html><title>ctid</title><p><a href="{link}">Log in</a> first.</p>'
        return web.HTTPUnauthorized(text=page, content_type="text/html", headers=headers)
    return web.HTTPUnauthorized(text="log in first: POST /login, or send a bearer token", headers=headers)


def _login_html(target: str, error: str, status: int) -> web.Response:
    message = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ctid: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>Log in to ctid</h1>{message}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(_local_path(target))}">
<p><label>User <input name="user" autocomplete="username" required autofocus></label></p>
<p><label>Password
<input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Log in</button></p>
</form></body></html>
"""
    return web.Response(text=page, content_type="text/html", status=status)
