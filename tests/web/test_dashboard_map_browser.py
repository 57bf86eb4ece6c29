"""The funnel map in a real browser (Debian's chromium, headless, Playwright's sync API), for both
shipped funnels after two weeks of a real daemon: the numbers drawn are the recount's, an
email node opens its page, and on a phone the page does not widen."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.web.dashboard_site import Dash
from tests.web.map_site import FUNNELS, PEOPLE, map_dashboard, recount, tell_map_story
from tests.web.test_dashboard_browser import log_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Dash]:
    with map_dashboard(db_url, tmp_path) as served:
        # On a thread of its own: Playwright's sync API keeps an event loop running on this one.
        with ThreadPoolExecutor(1) as story:
            story.submit(tell_map_story, served.harness).result()
        yield served


def test_both_shipped_funnels_draw_the_numbers_the_tables_hold(browser: Browser, site: Dash) -> None:
    base = str(site.http.base_url).rstrip("/")
    context = browser.new_context()
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        log_in(tab, base, "/dashboard/maps")
        for funnel in FUNNELS:
            plan = site.harness.daemon.live.current.plans[funnel]
            counted = recount(site.harness, funnel)
            stages = counted.pop("stage:")
            tab.goto(f"{base}/dashboard/maps")
            tab.locator(f'a[href="/dashboard/funnels/{funnel}/map"]').click()
            tab.wait_for_url(f"{base}/dashboard/funnels/{funnel}/map")
            drawing = tab.locator("svg.funnel-map")
            assert drawing.is_visible()
            box = drawing.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 1000
            for email in (e for e in plan.emails() if e.path.value in ("nurture", "sales", "customer")):
                truth = counted.get(email.id, {"waiting": 0, "sent": 0})
                node = drawing.locator(f'a.m-node[data-key="{email.id}"]')
                # SVG text has no innerText: its text content is what is drawn.
                lines = node.locator("text").all_text_contents()
                assert f"{truth['waiting']:,} waiting · {truth['sent']:,} sent" in lines, email.id
                mark = node.locator("g.m-mark text").text_content()
                assert mark == {"education": "E", "sale": "$"}[email.role.value], email.id
            confirm = plan.confirmation
            assert confirm is not None
            unconfirmed = sum(1 for _, answers in PEOPLE[funnel] if answers is None)
            assert stages["confirming"] == unconfirmed
            lines = drawing.locator(f'a.m-node[data-key="{confirm.id}"] text').all_text_contents()
            assert f"{unconfirmed} waiting · {len(PEOPLE[funnel])} sent" in lines
            # The exact numbers on hover: the node's <title>, as the browser shows it.
            first = plan.segments[0].nurture.steps[0]
            title = drawing.locator(f'a.m-node[data-key="{first.id}"] > title').text_content() or ""
            assert f"Sent: {counted[first.id]['sent']:,}" in title
            assert f"Opened (a weak signal): {counted[first.id]['open']:,}" in title
            # The table beside says the same.
            row = tab.locator(f'table.places tr[data-key="{first.id}"]')
            assert row.locator("td").nth(1).inner_text() == f"{counted[first.id]['sent']:,}"
            # A click on an email opens its page: its numbers and its preview, in a sandboxed frame.
            drawing.locator(f'a.m-node[data-key="{first.id}"]').click()
            tab.wait_for_url(f"{base}/dashboard/funnels/{funnel}/emails/{first.id}")
            assert tab.locator("h1").inner_text().startswith(first.id)
            numbers = tab.locator('tr[data-number="Sent"] td').first.inner_text()
            assert numbers == f"{counted[first.id]['sent']:,}"
            frame = tab.frame_locator("iframe.mail")
            assert "Alex" in frame.locator("body").inner_text()  # the sample subscriber's email
        assert dialogs == []
    finally:
        context.close()


def test_on_a_phone_the_map_page_does_not_widen_and_the_map_scrolls_inside(
    browser: Browser, site: Dash
) -> None:
    base = str(site.http.base_url).rstrip("/")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    try:
        log_in(tab, base, "/dashboard/funnels/first-marathon/map")
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        drawing = tab.locator("svg.funnel-map").bounding_box()
        assert drawing is not None and drawing["width"] >= 400  # readable text: the box scrolls sideways
        name = tab.locator("svg.funnel-map text.m-name").first.bounding_box()
        assert name is not None and name["height"] >= 9  # the node names stay legible
    finally:
        context.close()
