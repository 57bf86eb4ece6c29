"""POST /subscribe over real HTTP, on SQLite and PostgreSQL: what is answered and what is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from engine.store.tables import CONSENT, ENROLLMENT, SUBSCRIBER
from tests.web.conftest import Site
from tests.web.mailbox import html_of, parse


def counts(site: Site) -> dict[str, int]:
    with site.harness.db_engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (SUBSCRIBER, ENROLLMENT, CONSENT)}


def rows(site: Site, table: sa.Table) -> list[dict[str, Any]]:
    with site.harness.db_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def test_a_browser_form_goes_on_to_the_thank_you_page_and_the_signup_is_kept_with_proof(site: Site) -> None:
    response = site.http.post(
        "/subscribe",
        data={"email": " Ann@Example.COM ", "name": "Ann Lee", "funnel": "minimal",
              "timezone": "Europe/Budapest", "utm_source": "newsletter", "fields[shoe]": "42",
              "form": "footer"},
        headers={"User-Agent": "Mozilla/5.0 test", "X-Forwarded-For": "203.0.113.7"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://example.com/thanks"
    [subscriber] = rows(site, SUBSCRIBER)
    assert subscriber["email"] == "Ann@example.com"
    assert subscriber["timezone"] == "Europe/Budapest"
    assert subscriber["utm_source"] == "newsletter"
    assert subscriber["fields"] == {"shoe": "42"}
    [consent] = rows(site, CONSENT)
    assert consent["kind"] == "signup"
    assert consent["funnel"] == "minimal"
    assert consent["form"] == "footer"
    assert consent["ip"] == "203.0.113.7"
    assert consent["user_agent"] == "Mozilla/5.0 test"
    wording = "Send me “The guide” and emails from Minimal funnel. Unsubscribe at any time."
    assert consent["wording"] == wording
    [enrollment] = rows(site, ENROLLMENT)
    assert enrollment["stage"] == "confirming"


def test_json_answers_201_then_200_with_the_same_body_and_never_a_second_subscriber(site: Site) -> None:
    first = site.http.post("/subscribe", json={"email": "bo@example.com", "funnel": "minimal"})
    again = site.http.post("/subscribe", json={"email": "BO@example.com", "funnel": "minimal"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() == {"status": "pending_confirmation", "funnel": "minimal"}
    assert counts(site) == {"subscriber": 1, "enrollment": 1, "consent": 2}


def test_a_multipart_form_works_like_an_urlencoded_one(site: Site) -> None:
    parts = {"email": (None, "cy@example.com"), "funnel": (None, "minimal")}
    response = site.http.post("/subscribe", files=parts)
    assert response.status_code == 303
    assert counts(site)["subscriber"] == 1


def test_invalid_input_gets_a_message_per_field_and_nothing_is_written(site: Site) -> None:
    response = site.http.post(
        "/subscribe",
        json={"email": "ann@", "funnel": "minimal", "timezone": "Europe/Budapset", "emial": "x",
              "magnet": "guidee", "answers": {"level": "expert"}},
    )
    assert response.status_code == 422
    problems = {p["loc"][-1]: p["msg"] for p in response.json()["detail"]}
    assert problems["email"].startswith("'ann@' is not an email address")
    assert "did you mean 'Europe/Budapest'?" in problems["timezone"]
    assert "did you mean 'email'?" in problems["emial"]
    assert "did you mean 'guide'?" in problems["magnet"]
    assert problems["answers"] == "'expert' is not an answer of 'level'; write one of new, pro"
    assert counts(site) == {"subscriber": 0, "enrollment": 0, "consent": 0}


def test_a_browser_gets_the_problems_as_a_page_with_everything_escaped(site: Site) -> None:
    response = site.http.post("/subscribe", data={"email": "<script>x</script>", "funnel": "minimal"},
                              headers={"Accept": "text/html"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "<script>x" not in response.text
    assert "&lt;script&gt;x" in response.text


def test_an_unknown_funnel_is_a_404_with_its_name(site: Site) -> None:
    response = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimall"})
    assert response.status_code == 404
    assert response.json()["detail"][0]["msg"] == "no funnel 'minimall'; did you mean 'minimal'?"
    assert counts(site)["subscriber"] == 0


def test_control_characters_and_line_breaks_are_refused(site: Site) -> None:
    for name in ("Ann\r\nBcc: victim@example.com", "Ann\x00", "Ann\x7f", "Ann\u2028", "Ann\u0085"):
        body = {"email": "ann@example.com", "funnel": "minimal", "name": name}
        response = site.http.post("/subscribe", json=body)
        assert response.status_code == 422, name
        assert response.json()["detail"][0]["loc"] == ["body", "name"]
    assert counts(site)["subscriber"] == 0
    # A tab is no line break, and plain ASCII (the fast path of text_problem) is no different.
    for n, name in enumerate(("Kiss\tDóra", "Ann\tLee", "Ann Lee ~!")):
        body = {"email": f"ann{n}@example.com", "funnel": "minimal", "name": name}
        assert site.http.post("/subscribe", json=body).status_code == 201, name


def test_a_redirect_must_be_on_the_allow_list(site: Site, tmp_path: Path) -> None:
    response = site.http.post("/subscribe", data={"email": "ann@example.com", "funnel": "minimal",
                                                  "redirect": "https://evil.example/phish"})
    assert response.status_code == 422
    assert "allowed_redirects" in response.text  # a browser form gets a page
    assert counts(site)["subscriber"] == 0


def test_a_public_signup_does_not_overwrite_a_known_subscribers_details(site: Site) -> None:
    site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal", "name": "Ann"})
    site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal", "name": "Mallory",
                                       "fields": {"vip": "yes"}})
    [subscriber] = rows(site, SUBSCRIBER)
    assert (subscriber["name"], subscriber["fields"]) == ("Ann", {})


def test_the_honeypot_gets_the_usual_answer_and_nothing_is_written(site: Site) -> None:
    response = site.http.post("/subscribe", data={"email": "bot@example.com", "funnel": "minimal",
                                                  "website": "http://spam.example"})
    assert response.status_code == 303
    assert response.headers["location"] == "https://example.com/thanks"
    assert counts(site)["subscriber"] == 0


def test_repeated_signups_for_one_address_get_429_with_retry_after(site: Site) -> None:
    answers = [site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"},
                              headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(5)]
    assert answers == [201, 200, 200, 429, 429]  # signup_limit_per_address: 3 an hour
    limited = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0


def test_cors_only_for_the_funnels_origins(site: Site) -> None:
    plans = site.harness.daemon.live.current.plans
    assert plans["minimal"].allowed_origins == ()
    denied = site.http.options("/subscribe", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert denied.status_code == 403
    assert "access-control-allow-origin" not in denied.headers
    fetched = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"},
                             headers={"Origin": "https://evil.example", "Sec-Fetch-Mode": "cors"})
    assert fetched.status_code == 403
    assert counts(site)["subscriber"] == 0


def test_the_confirmation_email_carries_nothing_the_visitor_typed(site: Site) -> None:
    typed = "Visit http://spam.example now"
    site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal", "name": typed,
                                       "fields": {"note": typed}})
    site.harness.tick()
    [confirmation] = site.harness.transport.sent
    parsed = parse(confirmation)
    assert typed not in html_of(confirmation)
    assert typed not in str(parsed["To"]) and typed not in str(parsed["Subject"])
    assert "spam.example" not in confirmation.data.decode("ascii", "replace")


def test_a_field_sent_twice_is_refused_in_json_as_in_a_form(site: Site) -> None:
    body = b'{"email": "ann@example.com", "funnel": "minimal", "email": "eve@example.com"}'
    response = site.http.post("/subscribe", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "'email' was sent more than once; send it once"
    assert counts(site)["subscriber"] == 0


def test_honeypot_posts_do_not_use_up_the_address_allowance(site: Site) -> None:
    for _ in range(5):  # a bot, trapped every time
        trapped = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal",
                                                     "website": "x"})
        assert trapped.status_code == 201
    real = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
    assert real.status_code == 201
    assert counts(site)["subscriber"] == 1


def test_the_daemon_parses_http_with_httptools_not_h11() -> None:
    # The daemon's uvicorn.Config leaves `http` at "auto" (engine/daemon/runner.py), which takes
    # httptools when it is installed and falls back to the pure-Python h11 without a word: a
    # signup then costs ~0.06 ms more of the one core (docs/benchmarks.md). httptools is a
    # dependency so that this holds wherever the engine is installed.
    config = uvicorn.Config(FastAPI(), http="auto")
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"  # not H11Protocol
