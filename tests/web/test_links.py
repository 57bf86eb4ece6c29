"""The links in emails over real HTTP: a GET never acts, a POST does, a bad token is a plain 404."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.mail.tokens import sign, verify
from engine.store import sentmail
from engine.store.tables import CONSENT, ENROLLMENT, EVENT, SUBSCRIBER
from engine.subscribers import inbound
from tests.scheduler.harness import SECRET
from tests.web.conftest import Site
from tests.web.mailbox import link, links


def signed_up(site: Site, email: str = "ann@example.com") -> None:
    """Sign `email` up and send the confirmation."""
    assert site.http.post("/subscribe", json={"email": email, "funnel": "minimal"}).status_code == 201
    site.harness.tick()


def confirmed(site: Site, email: str = "ann@example.com") -> None:
    """Sign up, confirm, and send the magnet and the survey."""
    signed_up(site, email)
    confirmation = [m for m in site.harness.transport.sent if m.rcpt_to == email][-1]
    assert site.http.post(link(confirmation, "/confirm/")).status_code == 200
    site.harness.tick()
    site.harness.tick()


def table(site: Site, name: sa.Table) -> list[dict[str, Any]]:
    with site.harness.db_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(name).order_by(name.c.id)).mappings()]


def test_get_on_the_confirm_link_shows_a_button_and_only_the_post_confirms(site: Site) -> None:
    signed_up(site)
    [confirmation] = site.harness.transport.sent
    path = link(confirmation, "/confirm/")
    page = site.http.get(path)
    assert page.status_code == 200
    assert '<form method="post"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    site.harness.tick()
    assert site.harness.sent_steps() == ["confirm"]  # a scanner's GET confirmed nothing
    done = site.http.post(path)
    assert done.status_code == 200
    assert "confirmed" in done.text
    site.harness.tick()
    site.harness.tick()
    assert site.harness.sent_steps() == ["confirm", "magnet", "survey"]
    kinds = [c["kind"] for c in table(site, CONSENT)]
    assert kinds == ["signup", "confirm"]
    assert site.http.post(path).status_code == 200  # a second press changes nothing
    assert [e["type"] for e in table(site, EVENT)].count("confirmed") == 1


def test_forged_mutated_expired_and_misused_tokens_are_a_plain_404_and_change_nothing(site: Site) -> None:
    signed_up(site)
    [confirmation] = site.harness.transport.sent
    path = link(confirmation, "/confirm/")
    token = path.rsplit("/", 1)[1]
    message_id = verify(SECRET, "confirm", token, site.harness.clock.now(), timedelta(days=1))
    assert message_id is not None
    forged = sign("another-secret", "confirm", message_id, site.harness.clock.now())
    mutated = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    unsubscribe_token = link(confirmation, "/u/").rsplit("/", 1)[1]
    for bad in (forged, mutated, "x", "a" * 5000, unsubscribe_token):
        for method in ("GET", "POST"):
            response = site.http.request(method, f"/confirm/{bad}")
            assert response.status_code == 404, (method, bad[:20])
            assert response.text == "Not Found"
    site.harness.clock.advance(timedelta(days=401))  # link_lifetime: 400d
    assert site.http.post(path).status_code == 404
    assert [e["type"] for e in table(site, EVENT)] == []


def test_links_still_work_after_60_days(site: Site) -> None:
    confirmed(site)
    survey = site.harness.transport.sent[-1]
    site.harness.clock.advance(timedelta(days=61))
    assert site.http.get(link(survey, "/u/")).status_code == 200
    assert site.http.get(link(survey, "/a/")).status_code == 200


def test_a_survey_answer_is_recorded_by_the_pages_button_not_by_the_link(site: Site) -> None:
    confirmed(site)
    survey = site.harness.transport.sent[-1]
    answer_links = [p for p in links(survey) if p.startswith("/a/")]
    assert len(answer_links) == 2  # new, pro
    for path in answer_links:  # what a scanner does: fetch every link
        assert site.http.get(path).status_code == 200
    assert [e for e in table(site, EVENT) if e["type"] == "answer"] == []
    pro = answer_links[1]
    assert "Pro" in site.http.get(pro).text
    assert site.http.post(pro).status_code == 200
    [answer] = [e for e in table(site, EVENT) if e["type"] == "answer"]
    assert (answer["question"], answer["answer"]) == ("level", "pro")
    site.harness.tick()
    [enrollment] = table(site, ENROLLMENT)
    assert enrollment["segment"] == "two"


def test_one_click_unsubscribe_answers_200_without_a_redirect_or_cookie_in_both_encodings(site: Site) -> None:
    for email, send in (("ann@example.com", "data"), ("bo@example.com", "files")):
        confirmed(site, email)
        survey = [m for m in site.harness.transport.sent if m.rcpt_to == email][-1]
        path = link(survey, "/u/")
        body = {"List-Unsubscribe": "One-Click"}
        response = (site.http.post(path, data=body) if send == "data"
                    else site.http.post(path, files={k: (None, v) for k, v in body.items()}))
        assert response.status_code == 200
        assert "set-cookie" not in response.headers and "location" not in response.headers
    site.harness.clock.advance(timedelta(days=30))
    before = len(site.harness.transport.sent)
    site.harness.run_until(site.harness.clock.now() + timedelta(days=10))
    assert len(site.harness.transport.sent) == before
    assert {e["stage"] for e in table(site, ENROLLMENT)} == {"ended"}


def test_the_unsubscribe_page_offers_this_funnel_or_everything(site: Site) -> None:
    confirmed(site)
    path = link(site.harness.transport.sent[-1], "/u/")
    page = site.http.get(path)
    assert 'name="scope" value="all"' in page.text
    assert table(site, SUBSCRIBER)[0]["status"] == "active"  # the GET changed nothing
    assert site.http.post(path, data={"scope": "all"}).status_code == 200
    assert table(site, SUBSCRIBER)[0]["status"] == "unsubscribed"


def test_a_click_goes_only_where_the_email_pointed_and_counts_once(site: Site) -> None:
    confirmed(site)
    magnet = site.harness.transport.sent[1]
    clicks = [p for p in links(magnet) if p.startswith("/c/")]
    assert clicks, links(magnet)
    first = site.http.get(clicks[0])
    assert first.status_code == 302
    target = first.headers["location"]
    assert target == "https://example.com/guide.pdf?size=a4&lang=en"
    token = clicks[0].rsplit("/", 1)[1]
    values = verify(SECRET, "click", token, site.harness.clock.now(), timedelta(days=1))
    assert values is not None and values[1] == target
    assert site.http.get(clicks[0]).headers["location"] == target
    assert [e["type"] for e in table(site, EVENT)].count("click") == 1
    assert site.http.get(clicks[0] + "?url=https://evil.example").headers["location"] == target
    assert site.http.get(clicks[0][:-3] + "abc").status_code == 404


def test_the_open_pixel_is_an_image_and_counts_once(site: Site) -> None:
    confirmed(site)
    survey = site.harness.transport.sent[-1]
    [pixel] = [p for p in links(survey) if p.startswith("/o/")]
    for _ in range(3):
        response = site.http.get(pixel)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
    assert [e["type"] for e in table(site, EVENT)].count("open") == 1


def test_stop_all_keeps_a_bounced_status(site: Site) -> None:
    confirmed(site)
    path = link(site.harness.transport.sent[-1], "/u/")
    with site.harness.db_engine.begin() as conn:
        conn.execute(sa.update(SUBSCRIBER).values(status="bounced"))
    assert site.http.post(path, data={"scope": "all"}).status_code == 200
    assert table(site, SUBSCRIBER)[0]["status"] == "bounced"


def test_links_answer_503_when_the_database_cannot_be_read_and_clicks_still_redirect(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirmed(site)
    magnet = site.harness.transport.sent[1]
    confirm_path = link(site.harness.transport.sent[0], "/confirm/")
    [click] = [p for p in links(magnet) if p.startswith("/c/")]

    def down(*args: object) -> None:
        raise sa.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(sentmail, "delivery_by_message_id", down)
    page = site.http.get(confirm_path)
    assert page.status_code == 503 and page.headers["retry-after"] == "30"
    assert site.http.get(click).headers["location"] == "https://example.com/guide.pdf?size=a4&lang=en"


def test_signing_up_again_brings_a_second_confirmation_after_a_day_and_no_more(site: Site) -> None:
    signed_up(site)
    harness = site.harness
    harness.clock.advance(timedelta(hours=2))
    again = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
    assert again.status_code == 200
    harness.tick()
    assert harness.sent_steps() == ["confirm"]  # not within a day of the first
    harness.clock.advance(timedelta(hours=23))
    harness.tick()
    assert harness.sent_steps() == ["confirm", "confirm~again"]
    site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
    harness.run_until(harness.clock.now() + timedelta(days=3))
    assert harness.sent_steps() == ["confirm", "confirm~again"]  # only once
    resent = harness.transport.sent[1]
    assert site.http.post(link(resent, "/confirm/")).status_code == 200
    harness.tick()
    harness.tick()
    assert harness.sent_steps()[2:] == ["magnet", "survey"]


def test_a_click_and_an_open_still_work_when_the_database_cannot_be_written(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirmed(site)
    magnet = site.harness.transport.sent[1]
    [click] = [p for p in links(magnet) if p.startswith("/c/")]
    [pixel] = [p for p in links(magnet) if p.startswith("/o/")]

    def locked(*args: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(inbound, "click", locked)
    monkeypatch.setattr(inbound, "opened", locked)
    assert site.http.get(click).headers["location"] == "https://example.com/guide.pdf?size=a4&lang=en"
    assert site.http.get(pixel).headers["content-type"] == "image/gif"
