"""Written back, in a real browser (Debian chromium driven by Playwright): agent A writes a note, a quote and
a complaint step on a known customer's call, chooses the disposition in wrap-up and ends it early; the
customer's next call rings agent B, whose pop shows what A wrote; A's page never shows B's pop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctid.auth import Role
from tests.auth_rig import add_user, browser_login
from tests.routing.test_service_pbxsim import make_site  # noqa: F401  (fixture)
from tests.screenpop.rig import COMPLAINT, open_complaint
from tests.test_wallboard import CHROMIUM

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"
)

GOLD = "13900000001"
# every call id the pop card ever shows, recorded by the page itself
SEEN_POPS = """
window.__pops = [];
document.addEventListener("DOMContentLoaded", () => {
  const card = document.getElementById("pop");
  new MutationObserver(() => { if (card.dataset.linkedid && !window.__pops.includes(card.dataset.linkedid))
    window.__pops.push(card.dataset.linkedid); }).observe(card, {attributes: true});
});
"""


def shows(element: str, wanted: str) -> str:
    return f"() => (document.getElementById({element!r}).textContent || '').includes({wanted!r})"


async def desktop(browser: Any, base: str, user: str, password: str) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    await page.add_init_script(SEEN_POPS)
    await browser_login(page, base, user, password)
    await page.goto(f"{base}/agent")
    await page.wait_for_function("() => document.getElementById('link').textContent === 'live'")
    return page


async def test_what_agent_a_writes_pops_for_agent_b_on_the_customers_next_call(make_site: Any) -> None:  # noqa: F811
    from playwright.async_api import async_playwright

    site = await make_site()
    engine = site.ctid.context.engine
    open_complaint(engine)
    routing = site.routing_file.read_text().replace("    wrap_up_s: 0\n", "    wrap_up_s: 120\n")
    site.routing_file.write_text(routing + "dispositions: [resolved, quote-sent]\n")
    async with (
        aiohttp.ClientSession(headers=site.login) as admin,
        admin.post(f"{site.base}/api/routing/reload") as resp,
    ):
        assert resp.status == 200
    alice_password = add_user(engine, "alice-login", Role.AGENT, "alice")
    bob_password = add_user(engine, "bob-login", Role.AGENT, "bob")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        alice = await desktop(browser, site.base, "alice-login", alice_password)
        bob = await desktop(browser, site.base, "bob-login", bob_password)
        await alice.click("#ready")
        await alice.wait_for_function("() => document.getElementById('state').dataset.state === 'ready'")

        first = await site.server.call_in("trunk", "4000", cid_num=GOLD)
        await site.run(3)
        await alice.wait_for_function(
            "() => document.getElementById('pop-status').textContent === 'On call:'"
        )
        await alice.wait_for_function(shows("customer-name", "Gold Ltd"))
        first_call = await alice.evaluate("() => document.getElementById('pop').dataset.linkedid")

        await alice.fill("#wb-note", "Wants the yearly plan, call after 18:00")
        await alice.click("#add-note")
        await alice.wait_for_function(shows("pop", "Wants the yearly plan, call after 18:00"))
        await alice.fill("#q-product", "Fibre 1000 yearly")
        await alice.fill("#q-price", "599.00")
        await alice.fill("#q-currency", "CNY")
        await alice.fill("#q-valid", "2026-12-31")
        await alice.click("#add-quote")
        await alice.wait_for_function(shows("quotes", "Fibre 1000 yearly: 599.00 CNY"))
        await alice.select_option("#case-target", label=f"step on: {COMPLAINT}")
        await alice.fill("#step-done", "Booked a technician for Monday")
        await alice.fill("#step-next", "Confirm the fix on Tuesday")
        await alice.select_option("#step-status", "in_progress")
        await alice.click("#save-case")
        await alice.wait_for_function(shows("cases", "Booked a technician for Monday"))
        assert "(in progress)" in str(await alice.locator("#cases").text_content())

        ch = next(c for c in site.world.channels.values() if c.name == first)
        site.world.hangup(ch, 16)
        await site.run(1)
        await alice.wait_for_function("() => document.getElementById('state').dataset.state === 'wrap_up'")
        assert await alice.locator("#wrapup-ask").is_visible()
        assert await alice.locator("#disposition option").all_text_contents() == ["resolved", "quote-sent"]
        await alice.select_option("#disposition", "quote-sent")
        await alice.click("#dispose")
        await alice.wait_for_function(shows("disposed", "disposition: quote-sent"))
        await alice.click("#ready")  # wrap-up ended early
        await alice.wait_for_function("() => document.getElementById('state').dataset.state === 'ready'")
        assert not await alice.locator("#wrapup-ask").is_visible()
        await alice.select_option("#reason", "break")
        await alice.click("#pause")
        await alice.wait_for_function("() => document.getElementById('state').dataset.state === 'paused'")

        await bob.click("#ready")
        await bob.wait_for_function("() => document.getElementById('state').dataset.state === 'ready'")
        second = await site.server.call_in("trunk", "4000", cid_num=GOLD)
        await site.run(3)
        await bob.wait_for_function(shows("customer-name", "Gold Ltd"))
        await bob.wait_for_function(shows("pop", "Wants the yearly plan, call after 18:00"))
        assert "Fibre 1000 yearly: 599.00 CNY, valid until 2026-12-31" in str(
            await bob.locator("#quotes").text_content()
        )
        steps = await bob.locator("#cases li").all_text_contents()
        assert steps[-1].endswith("Booked a technician for Monday → next: Confirm the fix on Tuesday")
        second_call = await bob.evaluate("() => document.getElementById('pop').dataset.linkedid")
        assert second_call != first_call
        assert await alice.evaluate("() => window.__pops") == [first_call]  # never bob's pop
        assert await bob.evaluate("() => window.__pops") == [second_call]
        ch = next(c for c in site.world.channels.values() if c.name == second)
        site.world.hangup(ch, 16)
        await site.run(1)
        await browser.close()


async def test_an_unknown_caller_is_found_and_linked_or_created_from_the_pop(make_site: Any) -> None:  # noqa: F811
    from playwright.async_api import async_playwright

    site = await make_site()
    engine = site.ctid.context.engine
    password = add_user(engine, "alice-login", Role.AGENT, "alice")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        alice = await desktop(browser, site.base, "alice-login", password)
        await alice.click("#ready")
        await alice.wait_for_function("() => document.getElementById('state').dataset.state === 'ready'")

        first = await site.server.call_in("trunk", "4000", cid_num="13900000077")
        await site.run(3)
        await alice.wait_for_function(shows("customer-name", "unknown caller"))
        assert await alice.locator("#unknown").is_visible()
        assert not await alice.locator("#writeback").is_visible()
        await alice.fill("#s-name", "gold")
        await alice.click("#search")
        await alice.wait_for_function(shows("results", "Gold Ltd (gold)"))
        await alice.click("#results button")
        await alice.wait_for_function(shows("customer-name", "Gold Ltd"))
        assert await text_of(alice, "#identified") == "linked to the customer by you"
        assert not await alice.locator("#unknown").is_visible()
        assert await alice.locator("#writeback").is_visible()
        channel = next(c for c in site.world.channels.values() if c.name == first)
        assert channel.variables["CTID_CUSTOMER"] == "gold"
        site.world.hangup(channel, 16)
        await site.run(1)
        await alice.click("#dismiss")
        await alice.wait_for_function("() => document.getElementById('pop').hidden")

        await site.run(2)
        second = await site.server.call_in("trunk", "4000", cid_num="13900000088")
        await site.run(3)
        await alice.wait_for_function(shows("customer-name", "unknown caller"))
        assert await alice.input_value("#n-phone") == "13900000088"
        await alice.fill("#n-id", "newco")
        await alice.fill("#n-name", "New Co")
        await alice.click("#create")
        await alice.wait_for_function(shows("customer-name", "New Co"))
        assert await text_of(alice, "#lifecycle") == "lifecycle: prospect"
        channel = next(c for c in site.world.channels.values() if c.name == second)
        assert channel.variables["CTID_CUSTOMER"] == "newco"
        site.world.hangup(channel, 16)
        await site.run(1)
        await browser.close()


async def text_of(page: Any, selector: str) -> str:
    return str(await page.locator(selector).text_content() or "")
