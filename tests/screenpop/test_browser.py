"""The agent desktop in a real browser (Debian chromium driven by Playwright): an agent logs in, goes ready
on the page, pbxsim rings a known customer and the pop shows their open complaint with its steps; hostile
caller-ID names show as text and no script runs; the last quote and agents' notes show too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ctid.auth import Role
from ctid.customers.forms import note_form, quote_form
from ctid.customers.writes import Author, add_note, record_quote
from tests.auth_rig import add_user, browser_login
from tests.routing.test_service_pbxsim import AGENTS, make_site  # noqa: F401  (fixture)
from tests.screenpop.rig import COMPLAINT, STEPS, open_complaint
from tests.test_wallboard import CHROMIUM

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"
)

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(1)</script>"


async def text_of(page: Any, selector: str) -> str:
    return str(await page.locator(selector).text_content() or "")


async def test_the_pop_shows_the_customer_and_hostile_names_as_text(make_site: Any) -> None:  # noqa: F811
    from playwright.async_api import async_playwright

    site = await make_site()
    open_complaint(site.ctid.context.engine)
    with Session(site.ctid.context.engine) as session:  # the last quote and a note, as agents wrote them
        author = Author("bob-login", "bob")
        quote = quote_form(
            {"product": "Fibre 1000", "price": "59.90", "currency": "CNY", "valid_until": "2026-12-31"}
        )
        record_quote(session, "gold", quote, author, time.time())
        add_note(session, "gold", note_form({"text": "Prefers calls after 18:00"}), author, time.time())
        session.commit()
    password = add_user(site.ctid.context.engine, "alice-login", Role.AGENT, "alice")
    site.answer[AGENTS["alice"]] = 2.0
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        dialogs: list[str] = []

        async def refuse(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", refuse)
        # any alert() the page were tricked into running raises this flag, dialog or not
        await page.add_init_script(
            "window.__alerted = false; window.alert = () => { window.__alerted = true; };"
        )
        await browser_login(page, site.base, "alice-login", password)
        await page.goto(f"{site.base}/agent")
        await page.wait_for_function("() => document.getElementById('link').textContent === 'live'")
        await page.click("#ready")  # a POST with the CSRF header, as the page sends it
        await page.wait_for_function("() => document.getElementById('state').dataset.state === 'ready'")

        first = await site.server.call_in("trunk", "4000", cid_num="13900000001", cid_name=IMG)
        await site.run(1.5)  # ringing: not answered yet
        await page.wait_for_function("() => document.getElementById('pop-status').textContent === 'Ringing:'")
        await site.run(3)
        await page.wait_for_function(
            "() => document.getElementById('customer-name').textContent === 'Gold Ltd'"
        )
        assert await text_of(page, "#caller-name") == IMG
        assert await text_of(page, "#caller-num") == "13900000001"
        assert COMPLAINT in await text_of(page, "#cases")
        assert "Fibre 1000: 59.90 CNY" in await text_of(page, "#quotes")
        assert "bob: Prefers calls after 18:00" in await text_of(page, "#notes")
        steps = await page.locator("#cases li").all_text_contents()
        assert [s.split(" · ", 1)[1] for s in steps] == [
            f"{who}: {done} → next: {then}" for who, done, then in STEPS
        ]
        assert "identified by the IVR" in await text_of(page, "#identified")
        assert await page.locator("#pop img, #pop script").count() == 0
        ch = next(c for c in site.world.channels.values() if c.name == first)
        site.world.hangup(ch, 16)
        await site.run(1)
        await page.wait_for_function("() => document.getElementById('pop-status').textContent === 'Ended:'")
        await page.click("#dismiss")
        await page.wait_for_function("() => document.getElementById('pop').hidden")

        await site.run(2)  # alice is ready again (no wrap-up in this routing.yaml)
        second = await site.server.call_in("trunk", "4000", cid_num="13900000077", cid_name=SCRIPT)
        await site.run(4)
        await page.wait_for_function(
            "() => document.getElementById('customer-name').textContent === 'unknown caller'"
        )
        assert await text_of(page, "#caller-name") == SCRIPT
        assert await page.locator("#pop img, #pop script").count() == 0
        assert await page.locator("#cases").text_content() == ""
        assert await page.evaluate("() => window.__alerted") is False
        assert dialogs == []
        ch = next(c for c in site.world.channels.values() if c.name == second)
        site.world.hangup(ch, 16)
        await site.run(1)
        await browser.close()
