"""The dashboard's charts over time over real HTTP, on SQLite and PostgreSQL: a funnel's, an email's and a
broadcast's, their numbers against the rows, the range form and its errors, the strict headers."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store import broadcasts as calendar
from engine.store.tables import DELIVERY, ENROLLMENT
from tests.web.broadcast_site import broadcast_project
from tests.web.dashboard_site import PAUSE_DETAIL, Dash, dashboard, log_in, tell_story

RANGE = "from=2026-03-01&to=2026-03-08"
_ROW = re.compile(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>')
_CELL = re.compile(r'<td class="num">([^<]*)</td>')
_HEAD = re.compile(r'<th scope="col" class="num">([^<]*)</th>')


def table(html: str) -> dict[str, dict[str, str]]:
    """The page's table of numbers: row label -> column -> the number as shown."""
    part = html.split('<table class="daily">')[1].split("</table>")[0]
    columns = [unescape(c).replace("\u00ad", "") for c in _HEAD.findall(part)]  # soft hyphens
    return {
        label: dict(zip(columns, _CELL.findall(cells), strict=True)) for label, cells in _ROW.findall(part)
    }


def per_day(site: Dash, column: sa.ColumnElement[datetime], *where: sa.ColumnElement[bool]) -> Counter[str]:
    """Rows per UTC day, counted in the test from the rows themselves."""
    with site.harness.db_engine.connect() as conn:
        found = conn.execute(sa.select(column).where(column.is_not(None), *where)).scalars()
        return Counter(moment.astimezone(UTC).date().isoformat() for moment in found)


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Dash]:
    """The dashboard's story (Ann waits at e1, paused), served and logged in."""
    with dashboard(db_url, tmp_path) as served:
        tell_story(served.harness)
        assert log_in(served.http).status_code == 303
        yield served


def test_a_funnels_charts_show_each_days_numbers_as_the_rows_have_them(site: Dash) -> None:
    page = site.http.get(f"/dashboard/funnels/minimal/charts?{RANGE}")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and "style=" not in page.text
    shown = table(page.text)
    days = [f"2026-03-0{d}" for d in range(1, 9)]
    assert list(shown) == [*days, "All"]
    signups = per_day(site, ENROLLMENT.c.created_at, ENROLLMENT.c.funnel == "minimal")
    sent = per_day(site, DELIVERY.c.sent_at, DELIVERY.c.funnel == "minimal")
    assert sum(signups.values()) == 3 and sum(sent.values()) >= 4  # the story has something to show
    for day in days:
        assert shown[day]["Signups"] == str(signups[day])
        assert shown[day]["Sent"] == str(sent[day])
    assert shown["All"]["Signups"] == "3"
    assert shown["All"]["Confirmations"] == "1"  # Ann confirmed; the hostile names never did
    assert shown["All"]["Sent"] == str(sum(sent.values()))
    # Each point says its number on hover, as the table does.
    assert f"2026-03-02: Signups {signups['2026-03-02']}</title>" in page.text
    # The pause of e1 is shaded on every chart, with why.
    assert page.text.count('<g class="pause" data-step="e1">') == 4
    assert f"(unsubscribes: {PAUSE_DETAIL}), still paused" in page.text
    # Without dates: the last 30 days, today (Friday 6 March) included, written into the form.
    default = site.http.get("/dashboard/funnels/minimal/charts").text
    assert 'name="from" value="2026-02-05"' in default and 'name="to" value="2026-03-06"' in default
    shown = list(table(default))
    assert (shown[0], shown[-2], len(shown)) == ("2026-02-05", "2026-03-06", 31)
    # Linked from the funnel's page.
    funnel = site.http.get("/dashboard/funnels/minimal").text
    assert '<a href="/dashboard/funnels/minimal/charts">Charts over time</a>' in funnel


def test_an_emails_charts_count_that_email_only(site: Dash) -> None:
    h = site.harness
    with h.db_engine.begin() as conn:  # Ann's e1 goes out, after all, on Thursday
        enrollment = (
            conn.execute(
                sa.select(ENROLLMENT.c.id).where(ENROLLMENT.c.funnel == "minimal").order_by(ENROLLMENT.c.id)
            )
            .scalars()
            .first()
        )
        at = datetime(2026, 3, 5, 10, tzinfo=UTC)
        conn.execute(
            sa.insert(DELIVERY).values(
                enrollment_id=enrollment,
                subscriber_id=1,
                funnel="minimal",
                step="e1",
                message_id="<e1@t>",
                status="sent",
                created_at=at,
                updated_at=at,
                sent_at=at,
            )
        )
    h.event("ann@example.com", "click", funnel="minimal", step="e1", wake=False)  # Friday 09:00
    page = site.http.get(f"/dashboard/funnels/minimal/charts?{RANGE}&step=e1")
    assert page.status_code == 200
    shown = table(page.text)
    assert "Signups" not in shown["All"]  # people sign up to a funnel, not to an email
    assert (shown["2026-03-05"]["Sent"], shown["2026-03-06"]["Clicked"]) == ("1", "1")
    assert (shown["All"]["Sent"], shown["All"]["Clicked"], shown["All"]["Opened"]) == ("1", "1", "0")
    assert '<option value="e1" selected>' in page.text
    everything = table(site.http.get(f"/dashboard/funnels/minimal/charts?{RANGE}").text)
    assert int(everything["All"]["Sent"]) > 1


@pytest.mark.parametrize(
    ("query", "said"),
    [
        (
            "from=2026-13-01",
            "&#39;from&#39; is &#39;2026-13-01&#39;, which is not a date; write a date as YYYY-MM-DD",
        ),
        ("from=2026-03-09&to=2026-03-01", "&#39;from&#39; (2026-03-09) is after &#39;to&#39; (2026-03-01)"),
        ("from=2019-01-01", "a chart shows at most 1,096 days"),
        ("to=%3Cscript%3E", "&#39;to&#39; is &#39;&lt;script&gt;&#39;, which is not a date"),
    ],
)
def test_a_range_it_cannot_read_is_a_400_page_with_the_form_and_what_to_write(
    site: Dash, query: str, said: str
) -> None:
    page = site.http.get(f"/dashboard/funnels/minimal/charts?{query}")
    assert page.status_code == 400
    assert '<p class="error" role="alert">' in page.text and said in page.text
    assert '<form method="get" action="/dashboard/funnels/minimal/charts"' in page.text
    assert "<script>" not in page.text


def test_unknown_funnels_and_emails_are_404_pages_and_a_session_is_needed(site: Dash) -> None:
    assert site.http.get("/dashboard/funnels/nope/charts").status_code == 404
    assert site.http.get("/dashboard/funnels/minimal/charts?step=nope").status_code == 404
    assert site.http.get("/dashboard/funnels/" + "x" * 200 + "/charts").status_code == 404
    assert site.http.get("/dashboard/broadcasts/nope/charts").status_code == 404
    site.http.cookies.clear()
    answer = site.http.get(f"/dashboard/funnels/minimal/charts?{RANGE}")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/dashboard/login?next=")


def test_a_broadcasts_charts_show_its_email_and_the_revenue_it_brought(db_url: str, tmp_path: Path) -> None:
    broadcast_project(tmp_path / "project")
    with dashboard(db_url, tmp_path) as site:
        h = site.harness
        for name in ("ann", "dan"):
            h.add(f"{name}@example.com", first_name=name.title())
        h.tick()
        for name in ("ann", "dan"):
            h.event(f"{name}@example.com", "confirmed", funnel="minimal")
        plan = h.daemon.live.current.plans["minimal"].broadcast("digest")
        assert plan is not None
        with h.db_engine.begin() as conn:
            assert calendar.schedule(conn, plan, None, h.clock.now(), "maya")
        h.run_until(datetime(2026, 3, 6, 12, 0, tzinfo=UTC), every=timedelta(hours=1))
        assert h.sent_steps().count("digest") == 2
        h.event("ann@example.com", "purchase", funnel="minimal", amount=49.0, currency="EUR", wake=False)
        h.clock.advance(timedelta(days=9))  # outside the 7 days of attribution: not the broadcast's
        h.event("dan@example.com", "purchase", funnel="minimal", amount=10.0, currency="EUR", wake=False)
        assert log_in(site.http).status_code == 303
        page = site.http.get("/dashboard/broadcasts/digest/charts?from=2026-03-01&to=2026-03-20")
        assert page.status_code == 200
        shown = table(page.text)
        assert shown["2026-03-06"]["Sent"] == "2" and shown["All"]["Sent"] == "2"
        assert shown["2026-03-06"]["Revenue EUR"] == "49.00" and shown["All"]["Revenue EUR"] == "49.00"
        assert "Revenue attributed" in page.text
        assert (
            '<a href="/dashboard/broadcasts/digest/charts">Charts over time</a>'
            in site.http.get("/dashboard/broadcasts/digest").text
        )
