"""The funnel map through the real app on SQLite and PostgreSQL: after two weeks of a real daemon
on both shipped funnels, every number the map page shows equals a recount from the tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.stats.mapdata import ANSWERING, ENDED, SIGNUP
from tests.web.dashboard_site import Dash, log_in
from tests.web.map_site import FUNNELS, PEOPLE, map_dashboard, place_rows, recount, tell_map_story

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Dash]:
    with map_dashboard(db_url, tmp_path) as served:
        tell_map_story(served.harness)
        yield served


def _map_svg(html: str) -> ET.Element:
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])


@pytest.mark.parametrize("funnel", FUNNELS)
def test_the_map_shows_the_numbers_a_recount_of_the_tables_gives(site: Dash, funnel: str) -> None:
    assert log_in(site.http).status_code == 303
    response = site.http.get(f"/dashboard/funnels/{funnel}/map")
    assert response.status_code == 200, response.text
    assert "script" not in response.headers["content-security-policy"]
    html = response.text
    rows = place_rows(html)
    counted = recount(site.harness, funnel)
    stages = counted.pop("stage:")
    plan = site.harness.daemon.live.current.plans[funnel]
    emails = [e for e in plan.emails() if e.path.value != "broadcast"]
    drawn = {n.attrib["data-key"]: n for n in _map_svg(html).iter() if "data-key" in n.attrib}
    nurtured = 0
    for email in emails:
        truth = counted.get(email.id, {"waiting": 0, "sent": 0, "open": 0, "click": 0, "unsubscribe": 0})
        row = rows[email.id]
        waiting = truth["waiting"]
        if plan.confirmation and email.id == plan.confirmation.id:
            waiting = stages.get("confirming", 0)
        if plan.survey and email.id == plan.survey.email.id:
            waiting = stages.get("survey", 0)
        assert row["waiting"] == waiting, email.id
        assert drawn[email.id].attrib["data-waiting"] == str(waiting), email.id
        assert drawn[email.id].attrib["data-sent"] == str(truth["sent"]), email.id
        sent, opened, clicked, unsubscribed = row["cells"][2:6]
        assert sent == f"{truth['sent']:,}", email.id
        assert opened.split(" ")[0] == f"{truth['open']:,}", email.id
        assert clicked.split(" ")[0] == f"{truth['click']:,}", email.id
        assert unsubscribed.split(" ")[0] == f"{truth['unsubscribe']:,}", email.id
        nurtured += truth["sent"] if email.path.value == "nurture" else 0
    # The story reached the places it meant to: the map is not all zeros.
    assert nurtured > 0
    assert stages.get("confirming", 0) == sum(1 for _, a in PEOPLE[funnel] if a is None) > 0
    assert rows[plan.confirmation.id if plan.confirmation else ""]["waiting"] > 0
    assert rows[ANSWERING]["waiting"] == stages.get("answering", 0)
    assert rows[ENDED]["waiting"] == stages.get("ended", 0)
    assert sum(rows[SIGNUP + m.id]["waiting"] for m in plan.magnets) == len(PEOPLE[funnel])
    assert sum(counted[e.id]["open"] for e in emails if e.id in counted) > 0
    # Everyone enrolled is on the map once: on a place, or said to be elsewhere.
    assert f'data-total="{len(PEOPLE[funnel])}"' in html


def test_the_map_is_linked_from_the_funnel_page_and_the_nav_and_unknown_funnels_are_404(site: Dash) -> None:
    log_in(site.http)
    funnel_page = site.http.get("/dashboard/funnels/first-marathon").text
    assert 'href="/dashboard/funnels/first-marathon/map"' in funnel_page
    assert 'href="/dashboard/maps"' in funnel_page
    maps = site.http.get("/dashboard/maps")
    assert maps.status_code == 200
    assert all(f'href="/dashboard/funnels/{f}/map"' in maps.text for f in FUNNELS)
    missing = site.http.get("/dashboard/funnels/no-such-funnel/map")
    assert missing.status_code == 404
    assert "no file of the release being served defines it" in missing.text
    site.http.cookies.clear()
    assert site.http.get("/dashboard/funnels/first-marathon/map").status_code == 303  # to the login page
