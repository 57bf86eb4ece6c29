"""/api/experiments over real HTTP on SQLite and PostgreSQL: the key, and the shipped experiment's report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scheduler.harness import Harness
from tests.support.project import shipped_project
from tests.web.conftest import API_KEY, START, Site
from tests.web.served import serve


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """The shipped funnels (first-marathon's b-story tries three versions), served for real."""
    harness = Harness(db_url, shipped_project(tmp_path / "project"), START, api_key=API_KEY)
    try:
        with serve(harness) as http:
            yield Site(harness, http)
    finally:
        harness.close()


def test_the_experiments_and_their_numbers_behind_the_key(site: Site) -> None:
    assert site.http.get("/api/experiments").status_code == 401
    found = site.http.get("/api/experiments", params={"funnel": "first-marathon"}, headers=site.api).json()
    [experiment] = found["experiments"]
    assert (experiment["funnel"], experiment["step"], experiment["metric"], experiment["stopped"]) == (
        "first-marathon", "b-story", "purchases", False)
    assert [v["variant"] for v in experiment["variants"]] == ["story", "question", "short"]
    assert all(v["sends"] == 0 and v["rate"] is None for v in experiment["variants"])
    assert experiment["reason"].startswith("waiting: ")
    assert site.http.get("/api/experiments", params={"funnel": "camping-gear"}, headers=site.api).json() == {
        "experiments": []}


def test_an_unknown_funnel_is_a_404_that_names_the_funnels(site: Site) -> None:
    answer = site.http.get("/api/experiments", params={"funnel": "first-marathn"}, headers=site.api)
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        "no funnel named 'first-marathn'; did you mean 'first-marathon'?")
