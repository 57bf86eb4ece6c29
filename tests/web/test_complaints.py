"""Complaints and late hard bounces reported through POST /api/events, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.store.rows import email_hash
from tests.web.conftest import Site
from tests.web.feedback_site import message_id_of, numbers, open_shop, written


@pytest.fixture
def shop(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """Ann and Bo got the magnet and E1 (sent) and E2 (deferred) of the minimal funnel."""
    with open_shop(db_url, tmp_path) as site:
        yield site


def _event(site: Site, **body: Any) -> httpx.Response:
    return site.http.post("/api/events", json=body, headers=site.api)


def test_a_complaint_suppresses_the_address_and_counts_against_the_email_it_names(shop: Site) -> None:
    # It names the magnet, not E1 (the latest marketing email): the match is what counts.
    body = {"email": "ann@example.com", "type": "complaint", "id": "fbl-77",
            "message_id": f"<{message_id_of(shop, 'ann@example.com', 'magnet')}>"}
    first, again = _event(shop, **body), _event(shop, **body)
    assert (first.status_code, first.json()) == (201, {"status": "recorded", "subscriber_id": 1,
                                                       "type": "complaint"})
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    after = written(shop)
    assert after["events"] == [("complaint", "minimal", "magnet")]
    assert after["suppressed"] == {email_hash("ann@example.com"): "complained"}
    assert after["statuses"] == {"ann@example.com": "complained", "bo@example.com": "active"}
    assert [d for d in after["deliveries"] if d[0] == 1][-1] == (1, "e2", "suppressed")
    assert (numbers(shop, "magnet")["complained"], numbers(shop, "e1")["complained"]) == (1, 0)
    detail = shop.http.get("/api/subscribers/ann@example.com", headers=shop.api).json()
    assert detail["status"] == "complained"

    attempts = len(shop.harness.transport.attempts)
    shop.harness.run_until(shop.harness.clock.now() + timedelta(days=30), every=timedelta(hours=12))
    assert "ann@example.com" not in [m.rcpt_to for m, _ in shop.harness.transport.attempts[attempts:]]


def test_without_a_known_message_id_the_latest_marketing_email_takes_the_blame(shop: Site) -> None:
    for extra in ({}, {"message_id": "never-sent@example.com"}):
        answer = _event(shop, subscriber_id=2, type="complaint", **extra)
        assert answer.status_code == 201, answer.text
    # E1 is Bo's latest marketing email; the magnet (not marketing) and the deferred E2 are not blamed.
    assert written(shop)["events"] == [("complaint", "minimal", "e1")] * 2
    assert numbers(shop)["complained"] == 1


def test_a_message_id_of_someone_else_is_refused_and_nothing_is_written(shop: Site) -> None:
    before = written(shop)
    answer = _event(shop, email="ann@example.com", type="complaint",
                    message_id=message_id_of(shop, "bo@example.com", "e1"))
    assert answer.status_code == 422
    assert "was sent to another subscriber" in answer.json()["detail"]
    assert written(shop) == before


def test_a_bounce_reported_later_marks_the_email_bounced(shop: Site) -> None:
    answer = _event(shop, email="bo@example.com", type="bounce",
                    message_id=message_id_of(shop, "bo@example.com", "e1"))
    assert answer.status_code == 201
    again = _event(shop, email="bo@example.com", type="bounce",
                   message_id=message_id_of(shop, "bo@example.com", "e1"))
    assert again.json()["status"] == "duplicate"  # the same email named again, without an id
    after = written(shop)
    assert after["events"] == [("bounce", "minimal", "e1")]
    assert (2, "e1", "bounced") in after["deliveries"]
    assert after["suppressed"] == {email_hash("bo@example.com"): "bounced"}
    assert after["statuses"]["bo@example.com"] == "bounced"
    assert numbers(shop) == {"sent": 2, "delivered": 1, "bounced": 1, "complained": 0}


def test_message_id_belongs_to_complaints_and_bounces_only(shop: Site) -> None:
    for body in ({"email": "ann@example.com", "type": "purchase", "message_id": "x@example.com"},
                 {"email": "ann@example.com", "type": "complaint", "message_id": ""},
                 {"email": "ann@example.com", "type": "complaint", "message_id": "a\nb"}):
        assert _event(shop, **body).status_code == 422, body
    assert _event(shop, email="nobody@example.com", type="complaint").status_code == 404
    assert written(shop)["events"] == []
