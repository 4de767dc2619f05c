"""The wallboard in a real browser (Debian chromium driven by Playwright): a caller enters a queue, the
tile's waiting count changes, pushed over the WebSocket; a screenshot is kept as a test artifact."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctid.auth import Role
from tests.auth_rig import add_user, browser_login
from tests.routing.test_service_pbxsim import make_site  # noqa: F401  (fixture)

CHROMIUM = os.environ.get("CTID_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"
)


async def test_a_caller_entering_a_queue_changes_its_tile(make_site: Any) -> None:  # noqa: F811
    from playwright.async_api import async_playwright

    site = await make_site()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1600, "height": 900})
        password = add_user(site.ctid.context.engine, "sup", Role.SUPERVISOR)
        await browser_login(page, site.base, "sup", password)
        await page.goto(f"{site.base}/wallboard")
        waiting = page.locator('.tile[data-queue="sales"] [data-figure="waiting"]')
        await waiting.wait_for()
        assert await waiting.text_content() == "0"
        await site.call("4000", "13900000003")
        await page.wait_for_function(
            """() => document.querySelector('.tile[data-queue="sales"] [data-figure="waiting"]')
                       ?.textContent === "1" """,
            timeout=5000,
        )
        assert await page.locator("#status").text_content() != "reconnecting…"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "wallboard.png"), full_page=True)
        await browser.close()
    assert (ARTIFACTS / "wallboard.png").stat().st_size > 10_000
