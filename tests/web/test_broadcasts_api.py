"""/api/broadcasts over real HTTP on SQLite and PostgreSQL: the key, the list, one broadcast's numbers,
scheduling and cancelling with their refusals, and the broadcasts in /api/stats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.store import broadcasts as calendar
from tests.scheduler.harness import Harness
from tests.web.broadcast_site import broadcast_project
from tests.web.conftest import API_KEY, START, Site
from tests.web.served import serve

PATHS = [("GET", "/api/broadcasts"), ("GET", "/api/broadcasts/digest"),
         ("POST", "/api/broadcasts/digest/schedule"), ("POST", "/api/broadcasts/digest/cancel")]


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """The minimal funnel with its broadcasts, served for real; Ann and Bob confirmed."""
    harness = Harness(db_url, broadcast_project(tmp_path / "project"), START, api_key=API_KEY)
    try:
        for email in ("ann@example.com", "bob@example.com"):
            harness.add(email, first_name=email[:3].title())
            harness.tick()
            harness.event(email, "confirmed", funnel="minimal")
        with serve(harness) as http:
            yield Site(harness, http)
    finally:
        harness.close()


def test_without_the_key_every_broadcast_call_is_401_and_changes_nothing(site: Site) -> None:
    for method, path in PATHS:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = site.http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
    with site.harness.db_engine.connect() as conn:
        assert calendar.rows(conn) == {}


def test_the_list_and_one_broadcast(site: Site) -> None:
    listed = site.http.get("/api/broadcasts", headers=site.api).json()["broadcasts"]
    assert [(b["broadcast"], b["role"], b["when"], b["state"]) for b in listed] == [
        ("digest", "education", "2026-03-06 09:00 each recipient's local time", "draft"),
        ("flash", "sale", "2026-03-04 09:30 UTC", "draft"),
        ("old", "education", "2026-03-01 09:00 UTC", "draft"),
    ]
    one = site.http.get("/api/broadcasts/digest", headers=site.api).json()
    assert (one["broadcast"], one["state"], one["attribution"], one["purchases"], one["email"]["sent"]) == (
        "digest", "draft", "7d", 0, 0)
    unknown = site.http.get("/api/broadcasts/digst", headers=site.api)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == ("no broadcast 'digst' in broadcasts/; did you mean 'digest'? (a file "
                                        "with errors is not in the daemon's release: run funnel validate)")
    too_long = site.http.get("/api/broadcasts/" + "x" * 101, headers=site.api)
    assert too_long.status_code == 422


def test_schedule_send_cancel_and_the_refusals(site: Site) -> None:
    h = site.harness
    first = site.http.post("/api/broadcasts/digest/schedule", headers=site.api)
    assert first.status_code == 200, first.text
    assert (first.json()["scheduled"], first.json()["broadcast"]["state"]) == (True, "scheduled")
    again = site.http.post("/api/broadcasts/digest/schedule", headers=site.api)
    assert (again.status_code, again.json()["scheduled"]) == (200, False)
    past = site.http.post("/api/broadcasts/old/schedule", headers=site.api)
    assert past.status_code == 422
    detail = past.json()["detail"]  # the words `funnel broadcast schedule` prints
    assert detail.startswith("broadcast 'old' cannot be scheduled: its time has passed "
                             "(2026-03-01 09:00 UTC); set `send.at` in ")
    assert detail.endswith("broadcasts/old.yaml to a later time")
    draft = site.http.post("/api/broadcasts/flash/cancel", headers=site.api)
    assert draft.status_code == 409
    assert draft.json()["detail"].startswith("broadcast 'flash' is not scheduled: there is nothing to cancel")
    h.run_until(datetime(2026, 3, 6, 9, 30, tzinfo=UTC), every=timedelta(minutes=30))
    sent = site.http.get("/api/broadcasts/digest", headers=site.api).json()
    assert (sent["state"], sent["recipients"], sent["email"]["sent"]) == ("sent", 2, 2)
    stats = site.http.get("/api/stats", headers=site.api).json()
    assert [b["broadcast"] for b in stats["funnels"][0]["broadcasts"]] == ["digest", "flash", "old"]
    assert stats["funnels"][0]["broadcasts"][0] == sent
    cancelled = site.http.post("/api/broadcasts/digest/cancel", headers=site.api)
    assert cancelled.status_code == 200
    assert cancelled.json()["cancelled"] == {"recipients": 0, "deliveries": 0}  # everyone had it already
    assert cancelled.json()["broadcast"]["state"] == "cancelled"
    refused = site.http.post("/api/broadcasts/digest/schedule", headers=site.api)
    assert refused.status_code == 409
    assert "a cancelled broadcast does not go again" in refused.json()["detail"]
    with h.db_engine.connect() as conn:
        row = calendar.row(conn, "digest")
    assert row is not None and (row["scheduled_by"], row["cancelled_by"]) == ("api", "api")


def test_cancelling_stops_who_has_not_had_it(site: Site) -> None:
    h = site.harness
    assert site.http.post("/api/broadcasts/digest/schedule", headers=site.api).status_code == 200
    # Friday 01:00 UTC: taken (from Thursday 19:00, 09:00 at UTC+14), not yet due (09:00 UTC).
    h.run_until(datetime(2026, 3, 6, 1, 0, tzinfo=UTC), every=timedelta(hours=1))
    stopped = site.http.post("/api/broadcasts/digest/cancel", headers=site.api).json()
    assert stopped["cancelled"] == {"recipients": 2, "deliveries": 0}
    assert stopped["broadcast"]["recipients_by_status"] == {"cancelled": 2}
    h.run_until(datetime(2026, 3, 7, 12, 0, tzinfo=UTC), every=timedelta(hours=1))
    assert "digest" not in h.sent_steps()
