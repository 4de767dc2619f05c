"""Logins in a real browser (Debian chromium driven by Playwright): a supervisor logs in through /login,
sees the wallboard and marks an abandoned caller, and the log says who; an agent's login cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctid.auth import Role
from reports.log import load_events
from tests.auth_rig import add_user, browser_login
from tests.routing.test_service_pbxsim import START, make_site  # noqa: F401  (fixture)
from tests.test_wallboard import CHROMIUM

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"
)


async def test_a_supervisor_marks_the_worklist_in_the_browser_and_an_agent_cannot(
    make_site: Any,  # noqa: F811
) -> None:
    from playwright.async_api import async_playwright

    site = await make_site()
    engine = site.ctid.context.engine
    supervisor = add_user(engine, "sue", Role.SUPERVISOR)
    agent = add_user(engine, "alice-login", Role.AGENT, "alice")
    channel = await site.call("4000", "13900000042")  # nobody is ready: the caller waits, then gives up
    await site.run(30)
    await site.hang_up(channel)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        sue = await browser.new_page()
        await browser_login(sue, site.base, "sue", supervisor)
        assert sue.url == f"{site.base}/wallboard"  # where a supervisor lands
        handled = sue.locator("#worklist button", has_text="Handled")
        await handled.wait_for()
        assert "13900000042" in (await sue.locator("#worklist").text_content() or "")
        await handled.click()
        await sue.wait_for_function("() => document.querySelectorAll('#worklist tr').length === 0")

        alice = await (await browser.new_context()).new_page()
        await browser_login(alice, site.base, "alice-login", agent)
        response = await alice.goto(f"{site.base}/wallboard")
        assert response is not None and response.status == 403
        marked = await alice.evaluate(
            """async () => (await fetch("/api/wallboard/worklist/x", {method: "POST",
                 headers: {"Content-Type": "application/json"}, body: '{"action": "handled"}'})).status"""
        )
        assert marked == 403
        await browser.close()
    await site.ctid.interaction_log.flush()
    (mark,) = load_events(engine, START - 60, site.world.now + 60, kinds=["WorkItemMarked"])
    assert (mark["data"]["action"], mark["data"]["by"]) == ("handled", "sue")
    logins = load_events(engine, START - 60, site.world.now + 60, kinds=["UserLoggedIn"])
    assert [(e["data"]["user"], e["data"]["role"]) for e in logins] == [
        ("sue", "supervisor"),
        ("alice-login", "agent"),
    ]
