"""The charts over time in a real browser (Debian's chromium, Playwright): both shipped funnels with data.

A week of both shipped funnels: people sign up over three days, confirm, get their emails,
open and click them, buy and leave; a guardrail pauses one email. Each funnel's chart page
must draw its four charts, show in its table the numbers counted here from the rows, give
each point its exact number on hover, shade the pause, and run no script. With
FUNNEL_SCREENSHOTS=DIR set, it saves the pages there as PNG (docs/dashboard.md's pictures).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from engine.store import pauses
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT, MILESTONE
from tests.scheduler.harness import Harness
from tests.support.project import shipped_project
from tests.web.served import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 10)
PEOPLE = {
    "first-marathon": [("experience", "new"), ("experience", "racer"), ("experience", "regular")],
    "camping-gear": [("level", "amateur"), ("level", "pro"), ("level", "amateur")],
}
PRICES = {"first-marathon": ("my-first-marathon", 149.0, "EUR"), "camping-gear": ("tent", 89.5, "USD")}


def tell(h: Harness) -> None:
    """Three people a day for three days in each funnel; most confirm; their mail goes out and is read."""
    for day in range(3):
        for funnel, answers in PEOPLE.items():
            for i, (question, answer) in enumerate(answers):
                address = f"{funnel[:4]}-{day}-{i}@example.com"
                h.add(address, funnel=funnel, answers={question: answer}, name=f"Person {day}{i}")
                if i < 2:  # one in three never confirms
                    h.event(address, "confirmed", funnel=funnel)
        h.run_until(START + timedelta(days=day + 1), every=timedelta(hours=2))
    with h.db_engine.begin() as conn:
        sent = (
            conn.execute(sa.select(DELIVERY).where(DELIVERY.c.sent_at.is_not(None)).order_by(DELIVERY.c.id))
            .mappings()
            .all()
        )
    for n, delivery in enumerate(sent):
        email = f"p{delivery['subscriber_id']}"
        with h.db_engine.begin() as conn:
            moment = h.clock.now() + timedelta(minutes=n)
            if n % 2 == 0:
                conn.execute(
                    sa.insert(EVENT).values(
                        subscriber_id=delivery["subscriber_id"],
                        funnel=delivery["funnel"],
                        step=delivery["step"],
                        type="open",
                        at=moment,
                        external_id=f"open:{email}:{n}",
                        data={},
                    )
                )
            if n % 3 == 0:
                conn.execute(
                    sa.insert(EVENT).values(
                        subscriber_id=delivery["subscriber_id"],
                        funnel=delivery["funnel"],
                        step=delivery["step"],
                        type="click",
                        at=moment + timedelta(hours=30),
                        external_id=f"click:{email}:{n}",
                        data={},
                    )
                )
    for funnel, (product, amount, currency) in PRICES.items():
        h.event(
            f"{funnel[:4]}-0-0@example.com",
            "purchase",
            funnel=funnel,
            product=product,
            amount=amount,
            currency=currency,
            wake=False,
        )
        h.event(f"{funnel[:4]}-1-1@example.com", "unsubscribe", funnel=funnel, wake=False)
    with h.db_engine.begin() as conn:
        assert pauses.pause(
            conn,
            "first-marathon",
            "survey",
            pauses.Breach("unsubscribes", "5 of 210 sends (2.4%) over 2%", 210, 5, 0.02),
            START + timedelta(days=2, hours=12),
        )
    h.run_until(START + timedelta(days=5), every=timedelta(hours=6))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, str]]:
    """Both shipped funnels with a week of data, served (on SQLite: the HTTP tests cover PostgreSQL)."""
    folder = tmp_path_factory.mktemp("charts")
    url = f"sqlite:///{folder / 'funnel.db'}"
    migrated = make_engine(url)
    upgrade(migrated)
    migrated.dispose()
    harness = Harness(
        url,
        shipped_project(folder / "project"),
        START,
        admin_password=PASSWORD,
        base_url="http://127.0.0.1:8000",
    )
    try:
        # On a thread of its own: Playwright's sync API keeps an event loop on this one.
        with ThreadPoolExecutor(1) as story:
            story.submit(tell, harness).result()
        with serve(harness) as http:
            yield harness, str(http.base_url).rstrip("/")
    finally:
        harness.close()


def counted(h: Harness, funnel: str) -> dict[str, Counter[str]]:
    """Each day's numbers, counted here from the rows (UTC days)."""

    def days(statement: sa.Select[tuple[datetime]]) -> Counter[str]:
        with h.db_engine.connect() as conn:
            return Counter(at.astimezone(UTC).date().isoformat() for at in conn.execute(statement).scalars())

    firsts = (
        sa.select(sa.func.min(EVENT.c.at))
        .where(EVENT.c.funnel == funnel, EVENT.c.step.is_not(None))
        .group_by(EVENT.c.subscriber_id, EVENT.c.step)
    )
    return {
        "Signups": days(sa.select(ENROLLMENT.c.created_at).where(ENROLLMENT.c.funnel == funnel)),
        "Confirmations": days(
            sa.select(MILESTONE.c.at).where(MILESTONE.c.funnel == funnel, MILESTONE.c.stage == "magnet")
        ),
        "Sent": days(
            sa.select(DELIVERY.c.sent_at).where(DELIVERY.c.funnel == funnel, DELIVERY.c.sent_at.is_not(None))
        ),
        "Opened": days(firsts.where(EVENT.c.type == "open")),
        "Clicked": days(firsts.where(EVENT.c.type == "click")),
        "Unsubscribed": days(
            sa.select(EVENT.c.at).where(EVENT.c.funnel == funnel, EVENT.c.type == "unsubscribe")
        ),
    }


def log_in(tab: Page, base: str, path: str) -> None:
    tab.goto(base + path)
    assert "/dashboard/login?next=" in tab.url
    tab.fill("#password", PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(base + path)


@pytest.mark.parametrize("funnel", ["first-marathon", "camping-gear"])
def test_a_shipped_funnels_charts_show_its_days_as_the_rows_have_them(
    browser: Browser, site: tuple[Harness, str], funnel: str
) -> None:
    h, base = site
    expected = counted(h, funnel)
    assert sum(expected["Sent"].values()) > 10 and sum(expected["Clicked"].values()) > 0  # data to show
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    # A script or style the CSP refused would say so on the console; chromium's own favicon request 404s.
    tab.on(
        "console",
        lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None,
    )
    tab.on("response", lambda r: errors.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    try:
        path = f"/dashboard/funnels/{funnel}/charts?from={FIRST}&to={LAST}"
        log_in(tab, base, path)
        charts = tab.locator("svg.time-chart")
        assert charts.count() == 4
        for i in range(4):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
        # The table beside the charts: every day's numbers as counted from the rows.
        headers = tab.locator("table.daily thead th").all_text_contents()
        rows = tab.locator("table.daily tbody tr")
        assert rows.count() == (LAST - FIRST).days + 1
        for r in range(rows.count()):
            row = rows.nth(r)
            day = row.locator("th").inner_text()
            cells = dict(zip(headers[1:], row.locator("td").all_text_contents(), strict=True))
            for name, per_day in expected.items():
                assert cells[_header(headers, name)] == f"{per_day[day]:,}", (day, name)
        _, amount, currency = PRICES[funnel]
        total = tab.locator("table.daily tfoot td").all_text_contents()
        assert total[headers[1:].index(_header(headers, f"Revenue {currency}"))] == f"{amount:,.2f}"
        # Each point says its exact number: the SVG <title> of the busiest day's sends.
        busiest = max(expected["Sent"], key=lambda d: expected["Sent"][d])
        titles = tab.locator('svg.time-chart g[data-series="sent"] g.point title').all_text_contents()
        assert f"{busiest}: Sent {expected['Sent'][busiest]:,}" in titles
        # Lines are named on the chart itself, and told apart by their dash, not only their colour.
        assert "Sent" in tab.locator("svg.time-chart text.line-label").all_text_contents()
        dashes = {
            tab.locator(f"svg.time-chart g.series.s{i} path.line").first.evaluate(
                "line => getComputedStyle(line).strokeDasharray"
            )
            for i in range(3)
        }
        assert len(dashes) == 3
        paused = tab.locator('svg.time-chart g.pause[data-step="survey"]')
        assert paused.count() == (4 if funnel == "first-marathon" else 0)
        if funnel == "first-marathon":
            assert "survey paused 2026-03-04 18:00 UTC" in tab.locator("ul.pauses").inner_text()
        shots = os.environ.get("FUNNEL_SCREENSHOTS")
        if shots:
            tab.screenshot(path=str(Path(shots) / f"dashboard-charts-{funnel}.png"), full_page=True)
        # One email's page, chosen in the form.
        tab.select_option("#step", "survey" if funnel == "first-marathon" else "camp-survey")
        tab.get_by_role("button", name="Show").click()
        tab.wait_for_url(f"**/charts?from={FIRST}&to={LAST}&step=*")
        assert tab.locator("svg.time-chart").count() == 2
        assert dialogs == [] and errors == []
    finally:
        context.close()


def _header(headers: list[str], name: str) -> str:
    """The table's header for a column (the style sheet writes them in capitals; the text is as written)."""
    found = [h for h in headers if h.replace("\u00ad", "").lower() == name.lower()]  # soft hyphens
    assert found, (name, headers)
    return found[0]


def test_on_a_phone_the_charts_fit_the_screen_and_the_table_scrolls_inside(
    browser: Browser, site: tuple[Harness, str]
) -> None:
    _, base = site
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    try:
        path = f"/dashboard/funnels/first-marathon/charts?from={FIRST}&to={LAST}"
        log_in(tab, base, path)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        box = tab.locator("svg.time-chart").first.bounding_box()
        assert box is not None and box["width"] <= 390
        assert tab.locator(".numbers .scroll").evaluate("box => box.scrollWidth > box.clientWidth")
    finally:
        context.close()
