"""The dashboard's broadcast pages over real HTTP on SQLite and PostgreSQL: the list, a broadcast's numbers
and skips, the strict headers, and the Cancel button behind the session and its CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.store import broadcasts as calendar
from tests.web.broadcast_site import broadcast_project
from tests.web.dashboard_site import Dash, csrf_of, dashboard, log_in


@pytest.fixture
def dash(db_url: str, tmp_path: Path) -> Iterator[Dash]:
    """The broadcasts project served with its dashboard, logged in; Ann confirmed, Dan did not; 'digest'
    scheduled and taken (Friday 01:00 UTC), nobody's 09:00 yet."""
    broadcast_project(tmp_path / "project")
    with dashboard(db_url, tmp_path) as site:
        h = site.harness
        h.add("ann@example.com", first_name="Ann")
        h.add("dan@example.com", first_name="Dan")
        h.tick()
        h.event("ann@example.com", "confirmed", funnel="minimal")
        plan = h.daemon.live.current.plans["minimal"].broadcast("digest")
        assert plan is not None
        with h.db_engine.begin() as conn:
            assert calendar.schedule(conn, plan, None, h.clock.now(), "maya")
        h.run_until(datetime(2026, 3, 6, 1, 0, tzinfo=UTC), every=timedelta(hours=2))
        assert log_in(site.http).status_code == 303
        yield site


def _state(dash: Dash, broadcast_id: str) -> str | None:
    with dash.harness.db_engine.connect() as conn:
        row = calendar.row(conn, broadcast_id)
    return row["state"] if row else None


def test_the_list_links_each_broadcast_with_its_state(dash: Dash) -> None:
    page = dash.http.get("/dashboard/broadcasts")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<a href="/dashboard/broadcasts">Broadcasts</a>' in page.text  # in the nav
    assert '<a href="/dashboard/broadcasts/digest">digest</a>' in page.text
    row = page.text.split('data-broadcast="digest"')[1].split("</tr>")[0]
    assert "<td>sending</td>" in row and '<td class="num">2</td>' in row
    assert 'data-broadcast="flash"' in page.text and "<td>draft</td>" in page.text


def test_a_broadcast_page_shows_its_recipients_and_the_cancel_button_cancels(dash: Dash) -> None:
    page = dash.http.get("/dashboard/broadcasts/digest")
    assert page.status_code == 200
    assert "scheduled 2026-03-02 09:00 UTC by maya" in page.text
    assert "<tr><th scope=\"row\">pending</th><td class=\"num\">2</td></tr>" in page.text
    assert 'action="/dashboard/broadcasts/digest/cancel"' in page.text
    for fields in ({}, {"csrf": "forged"}):  # the token of the session's forms, or nothing happens
        assert dash.http.post("/dashboard/broadcasts/digest/cancel", data=fields).status_code == 403
    assert _state(dash, "digest") == calendar.SENDING
    token = csrf_of(page.text)
    done = dash.http.post("/dashboard/broadcasts/digest/cancel", data={"csrf": token})
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard/broadcasts/digest?cancelled=1")
    assert _state(dash, "digest") == calendar.CANCELLED
    after = dash.http.get(done.headers["location"]).text
    assert "is cancelled: nobody else gets it" in after
    assert "<tr><th scope=\"row\">cancelled</th><td class=\"num\">2</td></tr>" in after
    assert 'action="/dashboard/broadcasts/digest/cancel"' not in after  # nothing left to cancel
    dash.harness.run_until(datetime(2026, 3, 7, 12, 0, tzinfo=UTC), every=timedelta(hours=1))
    assert "digest" not in dash.harness.sent_steps()


def test_without_a_session_the_pages_and_the_button_go_to_the_login(dash: Dash) -> None:
    dash.http.cookies.clear()
    for path in ("/dashboard/broadcasts", "/dashboard/broadcasts/digest"):
        response = dash.http.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/dashboard/login?next=")
    pressed = dash.http.post("/dashboard/broadcasts/digest/cancel", data={"csrf": "x"})
    assert (pressed.status_code, pressed.headers["location"]) == (303, "/dashboard/login?next=/dashboard")
    assert _state(dash, "digest") == calendar.SENDING


def test_an_unknown_broadcast_is_a_404_page(dash: Dash) -> None:
    page = dash.http.get("/dashboard/broadcasts/nope")
    assert page.status_code == 404
    assert "No broadcast with this id" in page.text
    draft = dash.http.get("/dashboard/broadcasts/flash")
    assert draft.status_code == 200 and 'action="/dashboard/broadcasts/flash/cancel"' not in draft.text


def test_a_held_broadcast_says_why_and_can_still_be_cancelled(dash: Dash, tmp_path: Path) -> None:
    project = tmp_path / "project"
    funnel = (project / "sequences" / "minimal.yaml").read_text()
    (project / "sequences" / "other.yaml").write_text(funnel.replace("funnel: minimal\n", "funnel: other\n"))
    digest = project / "broadcasts" / "digest.yaml"
    digest.write_text(digest.read_text().replace("funnel: minimal\n", "funnel: other\n"))
    dash.harness.tick()  # the daemon serves the edited files
    page = dash.http.get("/dashboard/broadcasts/digest")
    assert "Held: broadcast &#39;digest&#39; was scheduled for funnel &#39;minimal&#39;" in page.text
    assert 'action="/dashboard/broadcasts/digest/cancel"' in page.text  # as the message says to
    done = dash.http.post("/dashboard/broadcasts/digest/cancel", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303 and _state(dash, "digest") == calendar.CANCELLED
    with dash.harness.db_engine.begin() as conn:  # a second cancel stops nothing and says so
        assert calendar.cancel(conn, "digest", dash.harness.clock.now(), "test") == calendar.Cancelled(
            0, 0, already=True)
