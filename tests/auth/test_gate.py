"""The gate every request passes, over real loopback HTTP on the daemon's whole route table: no login is a
401, the wrong role a 403, an agent only ever acts as themself, a cookie session's state-changing request
needs its CSRF token, a password is never logged nor returned, and failed logins slow down."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from ctid.auth import Role
from ctid.auth.component import CSRF_COOKIE, CSRF_HEADER, AuthComponent
from ctid.clock import VirtualClock
from ctid.config import load_config
from ctid.daemon import Ctid
from ctid.state import domain as d
from ctid.web import make_app
from tests.auth_rig import add_user, bearer
from tests.daemon_rig import write_ctid_yaml

SAMPLE_ROUTING = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login")}
AGENT_ROUTES = {
    ("POST", "/logout"),
    ("GET", "/api/me"),
    ("POST", "/api/agents/{agent_id}/state"),
    ("GET", "/agent"),  # the desktop (screenpop): each agent's own, by their login
    ("GET", "/ws/agent"),
    ("GET", "/api/desktop"),
    ("POST", "/api/pops/{linkedid}/transfer-note"),
    ("POST", "/api/pops/{linkedid}/dismiss"),
    ("POST", "/api/pops/{linkedid}/customer"),
}
# the customer API: agents read and write the customers of their own calls (checked by its handlers)
AGENT_ROUTES |= {
    ("GET", "/api/customers"),
    ("POST", "/api/customers"),
    ("GET", "/api/customers/{customer_id}"),
    ("POST", "/api/customers/{customer_id}/notes"),
    ("GET", "/api/customers/{customer_id}/quotes"),
    ("POST", "/api/customers/{customer_id}/quotes"),
    ("GET", "/api/customers/{customer_id}/cases"),
    ("POST", "/api/customers/{customer_id}/cases"),
    ("POST", "/api/customers/{customer_id}/cases/{case_id}/steps"),
    ("POST", "/api/customers/{customer_id}/lifecycle"),
    ("POST", "/api/calls/{linkedid}/disposition"),
}
ADMIN_ROUTES = {("POST", "/api/routing/reload"), ("POST", "/api/routing/rollback")}


@pytest.fixture()
async def site(tmp_path: Path) -> AsyncIterator[Any]:
    """The whole daemon's routes (not started: the gate answers before any handler runs), a virtual clock,
    an agent (alice), a supervisor and an admin."""
    shutil.copy(SAMPLE_ROUTING, tmp_path / "routing.yaml")
    config = write_ctid_yaml(tmp_path, ami_port=1)
    config.write_text(config.read_text() + "routing: routing.yaml\n")
    clock = VirtualClock()
    ctid = Ctid(load_config(config), clock=clock)
    published: list[d.DomainEvent] = []
    ctid.bus.subscribe(lambda origin, event: published.append(event) if origin == "auth" else None)
    engine = ctid.context.engine
    passwords = {
        "alice": add_user(engine, "alice", Role.AGENT, "alice"),
        "sue": add_user(engine, "sue", Role.SUPERVISOR),
        "ada": add_user(engine, "ada", Role.ADMIN),
    }
    app = make_app(ctid)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield SimpleNamespace(
            client=client,
            app=app,
            ctid=ctid,
            clock=clock,
            published=published,
            passwords=passwords,
            auth=ctid.component(AuthComponent),
            agent=bearer(engine, "agent-bob", Role.AGENT, "bob"),
            supervisor=bearer(engine, "sup-tok", Role.SUPERVISOR),
            admin=bearer(engine, "admin-tok", Role.ADMIN),
        )
    ctid.interaction_log.engine.dispose()


def mounted(app: Any) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()})


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"x-\1", path)


async def test_every_mounted_route_has_a_policy(site: Any) -> None:
    """A route added beside the gate, with no policy, fails here (and the gate refuses it)."""
    assert set(site.app.router.routes()) <= set(site.auth.policies)
    assert len(mounted(site.app)) >= 17  # ctid's own, reports, routing, wallboard, login


async def test_every_route_without_a_login_is_a_401_except_health_and_login(site: Any) -> None:
    checked = []
    for method, path in mounted(site.app):
        if (method, path) in PUBLIC:
            continue
        response = await site.client.request(method, concrete(path), json={})
        assert response.status == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        checked.append(path)
    assert "/metrics" in checked and "/ws/wallboard" in checked
    bad_token = {"Authorization": "Bearer not-a-token"}
    assert (await site.client.get("/api/calls", headers=bad_token)).status == 401
    assert (await site.client.get("/healthz")).status in (200, 503)
    assert (await site.client.get("/no/such/page")).status == 404  # unknown paths stay a 404


async def test_a_browser_without_a_login_is_shown_the_way_to_the_login_page(site: Any) -> None:
    response = await site.client.get("/wallboard", headers={"Accept": "text/html"})
    assert response.status == 401 and 'href="/login?next=/wallboard"' in await response.text()


async def test_every_route_above_a_role_is_a_403_for_it(site: Any) -> None:
    for method, path in mounted(site.app):
        if (method, path) in PUBLIC | AGENT_ROUTES:
            continue
        response = await site.client.request(method, concrete(path), json={}, headers=site.agent)
        assert response.status == 403, (method, path, "agent")
        if (method, path) in ADMIN_ROUTES:
            response = await site.client.request(method, path, headers=site.supervisor)
            assert response.status == 403, (method, path, "supervisor")


async def test_supervisors_read_everything_and_admins_reload(site: Any) -> None:
    for path in ("/api/calls", "/api/agents", "/api/queues", "/api/wallboard", "/api/routing/history"):
        assert (await site.client.get(path, headers=site.supervisor)).status == 200, path
    assert (await site.client.get("/metrics", headers=site.supervisor)).status == 200
    response = await site.client.post("/api/routing/reload", headers=site.admin)
    assert response.status == 200
    (action,) = [e for e in site.published if isinstance(e, d.AdminAction)]
    assert (action.user, action.action, action.status) == ("admin-tok", "POST /api/routing/reload", 200)


async def test_an_agent_changes_only_their_own_state(site: Any) -> None:
    other = await site.client.post("/api/agents/alice/state", json={"state": "ready"}, headers=site.agent)
    assert other.status == 403
    own = await site.client.post("/api/agents/bob/state", json={"state": "ready"}, headers=site.agent)
    assert own.status == 200 and (await own.json())["status"] == "ready"
    assert (await site.client.get("/api/calls", headers=site.agent)).status == 403
    assert (await site.client.get("/api/calls/some-call", headers=site.agent)).status == 403
    me = await site.client.get("/api/me", headers=site.agent)
    assert (await me.json())["agent_id"] == "bob"


async def login(site: Any, user: str, password: str | None = None) -> Any:
    body = {"user": user, "password": site.passwords[user] if password is None else password}
    return await site.client.post("/login", json=body)


async def test_a_cookie_session_needs_the_csrf_token_to_change_anything(site: Any) -> None:
    response = await login(site, "sue")
    assert response.status == 200
    csrf = (await response.json())["csrf"]
    cookie = response.cookies["ctid_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    assert response.cookies[CSRF_COOKIE].value == csrf
    assert (await site.client.get("/api/wallboard")).status == 200  # reading needs no token
    url = "/api/wallboard/worklist/nobody"
    cross_site = {"Origin": "https://evil.example"}
    assert (await site.client.post(url, json={"action": "handled"}, headers=cross_site)).status == 403
    wrong = {CSRF_HEADER: csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}
    assert (await site.client.post(url, json={"action": "handled"}, headers=wrong)).status == 403
    passed = await site.client.post(url, json={"action": "handled"}, headers={CSRF_HEADER: csrf})
    assert passed.status == 404  # through the gate: the handler's own answer
    assert (await site.client.post("/logout")).status == 403  # logging out changes state too
    assert (await site.client.post("/logout", headers={CSRF_HEADER: csrf})).status == 204
    assert (await site.client.get("/api/wallboard")).status == 401


async def test_a_bearer_token_needs_no_csrf_token(site: Any) -> None:
    response = await site.client.post(
        "/api/wallboard/worklist/nobody", json={"action": "handled"}, headers=site.supervisor
    )
    assert response.status == 404


async def test_a_session_ends_after_its_idle_time_and_when_its_user_is_disabled(site: Any) -> None:
    assert (await login(site, "sue")).status == 200
    assert (await site.client.get("/api/me")).status == 200
    site.clock.advance(8 * 3600 + 1)
    assert (await site.client.get("/api/me")).status == 401
    assert (await login(site, "sue")).status == 200
    site.auth.users.disable("sue")
    assert (await site.client.get("/api/me")).status == 401
    assert (await login(site, "sue")).status == 401  # a disabled user cannot log in


async def test_the_login_form_redirects_and_never_leaves_the_site(site: Any) -> None:
    form = {"user": "sue", "password": site.passwords["sue"], "next": "//evil.example/x"}
    response = await site.client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/wallboard"
    agent = {"user": "alice", "password": site.passwords["alice"]}
    response = await site.client.post("/login", data=agent, allow_redirects=False)
    assert response.headers["Location"] == "/agent"  # an agent lands on their desktop
    form["next"] = "/api/queues"
    response = await site.client.post("/login", data=form, allow_redirects=False)
    assert response.headers["Location"] == "/api/queues"
    form["password"] = "wrong password"
    response = await site.client.post("/login", data=form, allow_redirects=False)
    assert response.status == 401 and "Wrong user name or password" in await response.text()
    page = await (await site.client.get('/login?next="><script>alert(1)</script>')).text()
    assert "<script>alert" not in page


async def test_ten_wrong_passwords_in_a_row_are_slowed_down(site: Any) -> None:
    statuses = [(await login(site, "alice", f"guess-{n}")).status for n in range(10)]
    assert statuses == [401, 401, 401] + [429] * 7  # the fourth guess already waits
    slowed = await login(site, "alice")  # even the right password, while the wait lasts
    assert slowed.status == 429 and int(slowed.headers["Retry-After"]) >= 1
    site.clock.advance(1.0)
    assert (await login(site, "alice", "guess-again")).status == 401
    assert (await login(site, "alice")).status == 429  # the next wait is longer: 2 s
    site.clock.advance(2.0)
    assert (await login(site, "alice")).status == 200
    assert (await login(site, "alice", "one more typo")).status == 401  # a good login cleared the count
    kinds = [(type(e).__name__, getattr(e, "reason", "")) for e in site.published]
    assert kinds.count(("LoginFailed", "bad_login")) == 5
    assert kinds.count(("LoginFailed", "slowed")) == 9
    assert kinds.count(("UserLoggedIn", "")) == 1


async def test_guesses_sent_all_at_once_are_slowed_too(site: Any) -> None:
    guesses = [login(site, "alice", f"guess-{n}") for n in range(10)]
    statuses = sorted([response.status for response in await asyncio.gather(*guesses)])
    assert statuses == [401, 401, 401] + [429] * 7


async def test_a_password_is_never_logged_nor_returned(site: Any) -> None:
    password = site.passwords["sue"]
    wrong = "my-Secret-guess-123"
    with capture_logs() as logs:
        good = await login(site, "sue")
        bad = await login(site, "sue", wrong)
        bodies = [await good.text(), await bad.text(), await (await site.client.get("/api/me")).text()]
        headers = [str(dict(good.headers)), str(dict(bad.headers))]
    assert [e["event"] for e in logs] == ["login", "login_failed"]
    for secret in (password, wrong):
        assert not any(secret in str(entry) for entry in logs)
        assert not any(secret in text for text in bodies + headers)
        assert not any(secret in str(event.to_dict()) for event in site.published)
    logged_in = next(e for e in site.published if isinstance(e, d.UserLoggedIn))
    assert (logged_in.user, logged_in.role, logged_in.address) == ("sue", "supervisor", "127.0.0.1")
