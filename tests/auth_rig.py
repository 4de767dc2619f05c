"""Logged-in clients for tests that call ctid's routes: a user and a bearer token in a ctid database, an
auth component for the web layer of a fake daemon, and a browser page logged in through /login."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Engine

from ctid.auth import Role
from ctid.auth.component import AuthComponent
from ctid.auth.store import UserStore, create_schema
from ctid.clock import Clock, SystemClock
from ctid.config import WebListener
from ctid.db import make_engine
from ctid.state.domain import DomainEvent


def add_user(engine: Engine, name: str, role: Role = Role.ADMIN, agent_id: str = "") -> str:
    """Add a user to the database behind `engine`; their (random) password."""
    create_schema(engine)
    password = secrets.token_urlsafe(12)
    UserStore(engine, time.time).add(name, role, password, agent_id)
    return password


def bearer(engine: Engine, name: str = "", role: Role = Role.ADMIN, agent_id: str = "") -> dict[str, str]:
    """Headers that log a client in as a new user `name` (an admin unless told) of that database."""
    name = name or f"test-admin-{secrets.token_hex(4)}"
    add_user(engine, name, role, agent_id)
    token = UserStore(engine, time.time).issue_token(name)
    return {"Authorization": f"Bearer {token}"}


def bearer_for_url(url: str, name: str = "", role: Role = Role.ADMIN, agent_id: str = "") -> dict[str, str]:
    """As `bearer`, for the database of a ctid about to run in another process."""
    engine = make_engine(url)
    try:
        return bearer(engine, name, role, agent_id)
    finally:
        engine.dispose()


def fake_auth(
    engine: Engine | None = None, settings: WebListener | None = None, clock: Clock | None = None
) -> tuple[AuthComponent, list[tuple[str, DomainEvent]]]:
    """An auth component for a fake daemon's `components` (over an in-memory database unless given), and
    the events it publishes."""
    published: list[tuple[str, DomainEvent]] = []

    def publish(origin: str, events: list[DomainEvent]) -> None:
        published.extend((origin, event) for event in events)

    engine = engine or make_engine("sqlite://")
    create_schema(engine)
    clock = clock or SystemClock()
    auth = AuthComponent(UserStore(engine, clock.now), clock, publish, settings or WebListener())
    return auth, published


def logged_in_fake(engine: Engine | None = None) -> tuple[AuthComponent, dict[str, str]]:
    """An auth component for a fake daemon, and the headers of an admin logged in to it."""
    auth, _ = fake_auth(engine)
    return auth, bearer(auth.users.engine)


async def browser_login(page: Any, base: str, user: str, password: str) -> None:
    """Log `page` in through ctid's login form, as a person would."""
    await page.goto(f"{base}/login")
    await page.fill('input[name="user"]', user)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_load_state()
