"""The admin API over real HTTP: the key, events (purchases end sales paths), subscribers, OpenAPI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store import subscribers
from engine.store.tables import EVENT, TAG
from tests.scheduler.harness import Harness
from tests.support.project import funnels_project, minimal_project
from tests.web.conftest import API_KEY, START, Site
from tests.web.served import serve


def test_without_the_key_every_call_is_401(site: Site) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
        assert site.http.get("/api/subscribers", headers=headers).status_code == 401
        response = site.http.post("/api/events", json={"email": "a@example.com", "type": "purchase"},
                                  headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_with_no_key_set_the_api_is_off(db_url: str, tmp_path: Path) -> None:
    harness = Harness(db_url, minimal_project(tmp_path / "p"), START)
    try:
        with serve(harness) as http:
            response = http.get("/api/subscribers", headers={"Authorization": "Bearer anything"})
            assert response.status_code == 401
            assert "FUNNEL_API_KEY" in response.json()["detail"]
    finally:
        harness.close()


def test_a_purchase_ends_the_sales_path_at_once_and_starts_the_customer_path(site: Site) -> None:
    harness = site.harness
    harness.add("ann@example.com", answers={"level": "new"})
    harness.event("ann@example.com", "confirmed", funnel="minimal")
    while "o1" not in harness.sent_steps():
        harness.run_until(harness.clock.now() + timedelta(days=1))
        assert harness.clock.now() < START + timedelta(days=60)
    event = {"email": "ANN@example.com", "type": "purchase", "product": "course", "amount": 49.5,
             "currency": "eur", "id": "order-1001"}
    first = site.http.post("/api/events", json=event, headers=site.api)
    again = site.http.post("/api/events", json=event, headers=site.api)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["status"] == "recorded" and again.json()["status"] == "duplicate"
    harness.run_until(harness.clock.now() + timedelta(days=10))
    steps = harness.sent_steps()
    after = steps[steps.index("o1") + 1:]
    assert "o2" not in after
    assert after[:2] == ["c1", "c2"]
    with harness.db_engine.connect() as conn:
        purchases = conn.execute(sa.select(EVENT).where(EVENT.c.type == "purchase")).mappings().all()
    assert [(p["product"], p["amount"], p["currency"]) for p in purchases] == [("course", 49.5, "EUR")]


def test_tags_untags_and_custom_events_are_recorded(site: Site) -> None:
    site.harness.add("ann@example.com")
    for event in ({"type": "tag", "name": "vip"}, {"type": "tag", "name": "runner"},
                  {"type": "untag", "name": "runner"}, {"type": "webinar_attended"}):
        response = site.http.post("/api/events", json={"email": "ann@example.com", **event}, headers=site.api)
        assert response.status_code == 201, response.text
    with site.harness.db_engine.connect() as conn:
        assert list(conn.execute(sa.select(TAG.c.name)).scalars()) == ["vip"]
        kinds = [(e.type, e.name) for e in conn.execute(sa.select(EVENT).order_by(EVENT.c.id))]
    assert kinds == [("tag", "vip"), ("tag", "runner"), ("untag", "runner"), ("custom", "webinar_attended")]
    detail = site.http.get("/api/subscribers/ann@example.com", headers=site.api).json()
    assert detail["tags"] == ["vip"]


def test_bad_events_are_refused_with_a_reason(site: Site) -> None:
    site.harness.add("ann@example.com")
    cases = [
        ({"email": "nobody@example.com", "type": "purchase"}, 404),
        ({"type": "purchase"}, 422),
        ({"email": "ann@example.com", "type": "answer"}, 422),
        ({"email": "ann@example.com", "type": "tag"}, 422),
        ({"email": "ann@example.com", "type": "purchase", "amount": "lots"}, 422),
        ({"email": "ann@example.com", "type": "purchase", "product": "x\x00y"}, 422),
        ({"email": "ann@example.com", "type": "Purchase Now!"}, 422),
    ]
    for body, status in cases:
        response = site.http.post("/api/events", json=body, headers=site.api)
        assert response.status_code == status, (body, response.text)
    with site.harness.db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EVENT)).scalar_one() == 0


def test_an_unsubscribe_through_the_api_stops_marketing_email(site: Site) -> None:
    site.harness.add("ann@example.com")
    site.harness.event("ann@example.com", "confirmed", funnel="minimal")
    site.harness.tick()
    response = site.http.post("/api/events", json={"email": "ann@example.com", "type": "unsubscribe"},
                              headers=site.api)
    assert response.status_code == 201
    detail = site.http.get("/api/subscribers/ann@example.com", headers=site.api).json()
    assert detail["status"] == "unsubscribed"


def test_subscribers_are_added_listed_and_shown(site: Site) -> None:
    added = site.http.post("/api/subscribers", headers=site.api,
                           json={"email": "Ann@Example.com", "funnel": "minimal", "name": "Ann",
                                 "fields": {"shoe": "42"}, "confirmed": True})
    assert added.status_code == 201, added.text
    assert added.json()["enrollments"][0]["funnel"] == "minimal"
    again = site.http.post("/api/subscribers", headers=site.api, json={"email": "ann@example.com"})
    assert again.status_code == 200
    site.http.post("/api/subscribers", headers=site.api, json={"email": "bo@example.com"})
    page = site.http.get("/api/subscribers", params={"limit": 1}, headers=site.api).json()
    assert [s["email"] for s in page["subscribers"]] == ["Ann@example.com"]
    rest = site.http.get("/api/subscribers", params={"after": page["next"]}, headers=site.api).json()
    assert [s["email"] for s in rest["subscribers"]] == ["bo@example.com"] and rest["next"] is None
    site.harness.tick()
    detail = site.http.get("/api/subscribers/ANN@example.com", headers=site.api).json()
    assert detail["fields"] == {"shoe": "42"}
    assert detail["deliveries"][0]["step"] == "magnet"  # confirmed: no confirmation email
    assert site.http.get("/api/subscribers/nobody@example.com", headers=site.api).status_code == 404
    bad = site.http.post("/api/subscribers", headers=site.api, json={"email": "x", "funnel": "nope"})
    assert bad.status_code == 404


def test_a_page_of_subscribers_costs_the_same_statements_however_many_it_holds(site: Site) -> None:
    for n in range(6):
        address = f"p{n}@example.com"
        site.http.post("/api/subscribers", headers=site.api, json={"email": address, "funnel": "minimal"})
        for tag in ("b", "a"):
            body = {"email": address, "type": "tag", "name": tag}
            site.http.post("/api/events", headers=site.api, json=body)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not statement.startswith(("BEGIN", "SAVEPOINT", "RELEASE")):  # SQLite's BEGIN IMMEDIATE
            statements.append(statement)

    sa.event.listen(site.harness.db_engine, "before_cursor_execute", count)
    try:
        one = site.http.get("/api/subscribers", params={"limit": 1}, headers=site.api).json()
        for_one = len(statements)
        statements.clear()
        six = site.http.get("/api/subscribers", params={"limit": 6}, headers=site.api).json()
    finally:
        sa.event.remove(site.harness.db_engine, "before_cursor_execute", count)
    assert for_one == len(statements) <= 3  # the page, its tags, its enrollments
    assert [s["email"] for s in six["subscribers"]] == [f"p{n}@example.com" for n in range(6)]
    assert one["subscribers"] == six["subscribers"][:1]
    assert all(s["tags"] == ["a", "b"] and [e["funnel"] for e in s["enrollments"]] == ["minimal"]
               for s in six["subscribers"])


def test_the_openapi_document_describes_every_endpoint(site: Site) -> None:
    document = site.http.get("/openapi.json").json()
    wanted = {"/subscribe", "/api/events", "/api/subscribers", "/api/subscribers/{email}"}
    assert wanted <= set(document["paths"])
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert "application/json" in document["paths"]["/subscribe"]["post"]["requestBody"]["content"]


def test_a_purchase_ends_the_sales_paths_of_every_funnel(db_url: str, tmp_path: Path) -> None:
    harness = Harness(db_url, funnels_project(tmp_path / "p", ["minimal", "second"]), START, api_key=API_KEY)
    try:
        with serve(harness) as http:
            for funnel in ("minimal", "second"):
                harness.add("ann@example.com", funnel=funnel, answers={"level": "new"})
                harness.event("ann@example.com", "confirmed", funnel=funnel)
            # The 1/day cap interleaves the two funnels: run until one has started its sales path.
            while not any(d["step"] == "o1" for d in harness.deliveries()):
                harness.run_until(harness.clock.now() + timedelta(days=1))
                assert harness.clock.now() < START + timedelta(days=90)
            before = len(harness.deliveries())
            response = http.post("/api/events", headers={"Authorization": f"Bearer {API_KEY}"},
                                 json={"email": "ann@example.com", "type": "purchase", "id": "o-1"})
            assert response.status_code == 201
            harness.run_until(harness.clock.now() + timedelta(days=20))
            after = [(d["funnel"], d["step"]) for d in harness.deliveries()[before:]]
    finally:
        harness.close()
    assert [step for _, step in after if step.startswith("o")] == []  # no offer in either funnel
    assert {("minimal", "c1"), ("second", "c1")} <= set(after)


def test_single_opt_in_sends_the_magnet_at_once(db_url: str, tmp_path: Path) -> None:
    project = minimal_project(tmp_path / "p")
    sequence = project / "sequences" / "minimal.yaml"
    sequence.write_text(sequence.read_text().replace("  default_magnet: guide\n",
                                                     "  default_magnet: guide\n  double_opt_in: false\n"))
    harness = Harness(db_url, project, START)
    try:
        with serve(harness) as http:
            answer = http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
            assert answer.status_code == 201
            assert answer.json() == {"status": "subscribed", "funnel": "minimal"}
            harness.tick()
            assert harness.sent_steps() == ["magnet", "survey"]
    finally:
        harness.close()


def test_an_api_unsubscribe_is_idempotent_by_id_and_names_only_real_funnels(site: Site) -> None:
    site.harness.add("ann@example.com")
    body = {"email": "ann@example.com", "type": "unsubscribe", "funnel": "minimal", "id": "u-1"}
    first = site.http.post("/api/events", json=body, headers=site.api)
    again = site.http.post("/api/events", json=body, headers=site.api)
    assert (first.status_code, again.status_code) == (201, 200)
    wrong = site.http.post("/api/events", json={**body, "funnel": "minimall", "id": "u-2"}, headers=site.api)
    assert wrong.status_code == 422
    assert "did you mean 'minimal'?" in wrong.json()["detail"]


def test_the_api_answers_503_in_json_when_the_database_cannot_be_read(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object) -> None:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(subscribers, "subscribers_page", down)
    response = site.http.get("/api/subscribers", headers=site.api)
    assert response.status_code == 503
    assert response.json() == {"detail": "the database is unavailable; try again"}
