"""GET /api/stats over real HTTP: the key, the report's shape, unknown funnels and bad dates."""

from __future__ import annotations

from datetime import timedelta

from engine.store.stepstats import StepCounts
from tests.web.conftest import START, Site

FUNNEL_KEYS = {"funnel", "name", "stages", "answers", "segments", "sources", "revenue",
               "revenue_per_subscriber", "purchases", "products", "winback", "sunset", "unsubscribed",
               "steps", "paused", "broadcasts"}
STEP_EXTRAS = {"path", "segment", "role", "subject", "paused", "paused_detail"}


def test_without_the_key_it_is_401(site: Site) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = site.http.get("/api/stats", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_report_has_the_documented_shape_and_counts(site: Site) -> None:
    harness = site.harness
    harness.add("ann@example.com", source="landing")
    harness.add("bob@example.com")
    harness.tick()
    harness.event("ann@example.com", "confirmed", funnel="minimal")
    harness.run_until(START + timedelta(days=1))
    response = site.http.get("/api/stats", headers=site.api)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    report = response.json()
    assert report["generated_at"] == harness.clock.now().isoformat()
    assert report["since"] is None
    [funnel] = report["funnels"]
    assert set(funnel) == FUNNEL_KEYS
    assert [(s["stage"], s["label"], s["count"], s["conversion"]) for s in funnel["stages"]] == [
        ("signed_up", "Signed up", 2, None), ("confirmed", "Confirmed", 1, 0.5),
        ("answered", "Answered the survey", 0, 0.0), ("nurture", "In nurture", 0, 0.0),
        ("sales", "Reached sales", 0, None), ("purchased", "Purchased", 0, None),
        ("customers", "Customers", 0, None),
    ]
    assert [(a["question"], a["answer"], a["label"], a["count"]) for a in funnel["answers"]] == [
        ("level", "new", "New", 0), ("level", "pro", "Pro", 0)]
    assert [(s["segment"], s["name"], s["stages"][0]["count"]) for s in funnel["segments"]] == [
        ("one", "Segment one", 0), ("two", "Segment two", 0), (None, "no segment yet", 2)]
    assert funnel["sources"] == [  # as many signups each: the one without a source first
        {"source": None, "utm_source": None, "signed_up": 1, "confirmed": 0, "purchased": 0, "customers": 0,
         "revenue": {}},
        {"source": "landing", "utm_source": None, "signed_up": 1, "confirmed": 1, "purchased": 0,
         "customers": 0, "revenue": {}},
    ]
    assert (funnel["revenue"], funnel["revenue_per_subscriber"], funnel["purchases"]) == ({}, {}, 0)
    assert funnel["products"] == []  # no products: map and nothing bought
    assert (funnel["winback"], funnel["sunset"], funnel["unsubscribed"], funnel["paused"]) == (0, 0, 0, [])
    step_keys = set(StepCounts("f", "s").as_dict()) | STEP_EXTRAS
    assert all(set(step) == step_keys for step in funnel["steps"])
    steps = {s["step"]: s for s in funnel["steps"]}
    assert (steps["confirm"]["sent"], steps["magnet"]["sent"], steps["survey"]["sent"]) == (2, 1, 1)
    assert (steps["magnet"]["path"], steps["magnet"]["role"], steps["magnet"]["paused"]) == (
        "magnet", "transactional", False)


def test_one_funnel_and_since(site: Site) -> None:
    site.harness.add("ann@example.com")
    query = {"funnel": "minimal", "since": "2026-03-03"}
    response = site.http.get("/api/stats", params=query, headers=site.api)
    assert response.status_code == 200
    report = response.json()
    assert report["since"] == "2026-03-03T00:00:00+00:00"
    assert report["funnels"][0]["stages"][0]["count"] == 0  # Ann signed up on the 2nd


def test_an_unknown_funnel_is_404_with_a_suggestion(site: Site) -> None:
    response = site.http.get("/api/stats", params={"funnel": "minimall"}, headers=site.api)
    assert response.status_code == 404
    assert response.json() == {"detail": "no funnel named 'minimall'; did you mean 'minimal'?"}


def test_a_bad_since_is_422_saying_what_to_write(site: Site) -> None:
    response = site.http.get("/api/stats", params={"since": "yesterday"}, headers=site.api)
    assert response.status_code == 422
    assert response.json() == {"detail": [{
        "loc": ["query", "since"], "type": "value_error",
        "msg": "'yesterday' is not a date; write a date like 2026-03-01 (midnight UTC) or a time like "
               "2026-03-01T09:00+01:00",
    }]}
