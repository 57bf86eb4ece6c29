"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright (sync API).

Log in, read a funnel's chart, find a subscriber with a hostile name and open their
timeline (no script runs: no dialog ever opens), resume a paused step with its button,
and open an outbox message in its sandboxed frame. The browser is /usr/bin/chromium;
Playwright never downloads one. Without chromium or Playwright these tests skip, unless
FUNNEL_REQUIRE_BROWSER=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from engine.stats.broadcasts import read_report
from tests.web.dashboard_site import (
    IMG_NAME,
    PASSWORD,
    SCRIPT_NAME,
    Dash,
    dashboard,
    pause_row,
    tell_story,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Dash]:
    """The dashboard's story, served for real."""
    with dashboard(db_url, tmp_path) as served:
        # On a thread of its own: Playwright's sync API keeps an event loop running on this
        # one, and the harness's ticks start their own with asyncio.run().
        with ThreadPoolExecutor(1) as story:
            story.submit(tell_story, served.harness).result()
        yield served


class Watched:
    """A browser tab that records every dialog (alert, confirm) and every URL it fetched."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.fetched: list[str] = []
        page.on("dialog", self._dialog)
        # Responses, not requests: chromium reports a request the CSP then blocks (failure 'csp').
        page.on("response", lambda response: self.fetched.append(response.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def log_in(tab: Page, base: str, path: str) -> None:
    """Ask for `path`, land on the login page, log in, and be sent back to `path`."""
    tab.goto(base + path)
    assert "/dashboard/login?next=" in tab.url
    tab.fill("#password", PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(base + path)


def test_an_operator_reads_the_funnel_finds_a_subscriber_resumes_a_step_and_opens_a_message(
    browser: Browser, site: Dash
) -> None:
    base = str(site.http.base_url).rstrip("/")
    context = browser.new_context()
    watched = Watched(context.new_page())
    tab = watched.page
    try:
        # Log in: the login page sends the browser back to the page it asked for.
        log_in(tab, base, "/dashboard/funnels/minimal")

        # The chart: one bar per stage, with the counts the report holds.
        report = read_report(site.harness.db_engine, site.harness.daemon.live.current.plans, "minimal",
                             now=site.harness.clock.now())
        stages = report["funnels"][0]["stages"]
        assert [s["count"] for s in stages][:2] == [3, 1]  # three signed up, Ann confirmed
        chart = tab.locator("svg.funnel-chart")
        assert chart.locator("g.stage").count() == len(stages)
        # SVG text has no innerText: its text content is what is drawn.
        assert chart.locator("text.label").all_text_contents() == [s["label"] for s in stages]
        values = chart.locator("text.value").all_text_contents()
        assert values[0] == "3"
        assert values[1] == "1 · 33.3%"
        assert [v.split(" ")[0] for v in values] == [str(s["count"]) for s in stages]
        widths = [chart.locator("rect.bar").nth(i).bounding_box() for i in range(2)]
        assert widths[0] is not None and widths[1] is not None
        assert widths[1]["width"] == pytest.approx(widths[0]["width"] / 3, rel=0.02)

        # Find a subscriber by a piece of their address; their hostile name is only text.
        tab.get_by_role("link", name="Subscribers").click()
        tab.fill("#q", "mallory")
        tab.get_by_role("button", name="Search").click()
        tab.wait_for_url(f"{base}/dashboard/subscribers?q=mallory")
        assert tab.locator("table.people tbody tr").count() == 1
        assert tab.locator("table.people .name").inner_text() == SCRIPT_NAME
        tab.get_by_role("link", name="mallory@example.com").click()
        assert tab.locator("h1.person-name").inner_text().startswith(SCRIPT_NAME)
        assert tab.locator("main script").count() == 0
        tab.goto(f"{base}/dashboard/subscribers?q=imgur")
        tab.get_by_role("link", name="imgur@example.com").click()
        assert tab.locator("h1.person-name").inner_text().startswith(IMG_NAME)
        assert tab.locator("img").count() == 0

        # Resume the paused step with its button.
        tab.get_by_role("link", name="Funnels").click()
        tab.get_by_role("link", name="Minimal funnel").click()
        row = tab.locator("tr#step-e1")
        assert row.get_attribute("class") == "paused"
        assert "Paused" in row.inner_text()
        row.get_by_role("button", name="Resume step e1").click()
        tab.wait_for_url(f"{base}/dashboard/funnels/minimal?resumed=e1")
        assert "Step e1 is running again" in tab.get_by_role("status").inner_text()
        assert "Running" in tab.locator("tr#step-e1").inner_text()
        assert tab.locator("tr#step-e1").get_attribute("class") == ""
        resumed = pause_row(site.harness)
        assert resumed["resumed_at"] == site.harness.clock.now()
        assert resumed["resumed_by"] == "dashboard"

        # An outbox message, in a sandboxed frame: its script does not run, its pixel is not fetched.
        tab.get_by_role("link", name="Outbox").click()
        tab.get_by_role("link", name="Hostile <b>subject</b>").click()
        frame = tab.locator("iframe.mail")
        assert frame.get_attribute("sandbox") == ""
        assert tab.frame_locator("iframe.mail").locator("#greeting").inner_text() == "Hello from the email"
        assert any(url.endswith("/html") for url in watched.fetched)
        assert not any("tracker.example" in url for url in watched.fetched)
        assert watched.dialogs == []
    finally:
        context.close()


def test_on_a_phone_the_pages_fit_the_screen_and_wide_tables_scroll_inside(
    browser: Browser, site: Dash
) -> None:
    base = str(site.http.base_url).rstrip("/")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    try:
        log_in(tab, base, "/dashboard/funnels/minimal")
        for path in ("/dashboard", "/dashboard/funnels/minimal", "/dashboard/subscribers"):
            tab.goto(base + path)
            assert tab.evaluate("document.documentElement.scrollWidth") <= 390, path
        tab.goto(base + "/dashboard/funnels/minimal")
        steps = tab.locator("#steps .scroll")
        assert steps.evaluate("box => box.scrollWidth > box.clientWidth")  # the table scrolls sideways
    finally:
        context.close()
