"""First and last names over real HTTP, on SQLite and PostgreSQL.

A form, JSON and the API store them as given, the email greets by them, the dashboard shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.mail.transport import Outgoing
from engine.store.tables import SUBSCRIBER
from tests.web.conftest import Site
from tests.web.dashboard_site import dashboard, log_in
from tests.web.mailbox import parse


def names(site: Site) -> dict[str, tuple[Any, Any, Any]]:
    with site.harness.db_engine.connect() as conn:
        rows = conn.execute(sa.select(SUBSCRIBER.c.email_key, SUBSCRIBER.c.name, SUBSCRIBER.c.first_name,
                                      SUBSCRIBER.c.last_name)).all()
    return {key: (name, first, last) for key, name, first, last in rows}


def text_of(message: Outgoing) -> str:
    part = parse(message).get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_browser_form_and_json_store_the_first_and_last_name_as_given(site: Site) -> None:
    form = site.http.post("/subscribe", data={"email": "dora@example.com", "funnel": "minimal",
                                              "name": "Kiss Dóra", "first_name": " Dóra ",
                                              "last_name": "Kiss", "locale": "hu"})
    assert form.status_code == 303
    json = site.http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal",
                                              "first_name": "Ann  Mary", "last_name": "Lee"})
    assert json.status_code == 201, json.text
    plain = site.http.post("/subscribe", json={"email": "bo@example.com", "funnel": "minimal", "name": "Bo"})
    assert plain.status_code == 201
    assert names(site) == {
        "dora@example.com": ("Kiss Dóra", "Dóra", "Kiss"),
        "ann@example.com": ("", "Ann Mary", "Lee"),  # on one line, single-spaced
        "bo@example.com": ("Bo", None, None),  # not given: NULL, and templates guess from the name
    }


def test_a_bad_first_or_last_name_is_refused_with_a_message_and_nothing_is_written(site: Site) -> None:
    response = site.http.post("/subscribe", json={"email": "dora@example.com", "funnel": "minimal",
                                                  "first_name": "D" * 101, "last_name": "Kiss\r\nBcc: x"})
    assert response.status_code == 422
    problems = {p["loc"][-1]: p["msg"] for p in response.json()["detail"]}
    assert problems == {"first_name": "is 101 characters long; at most 100 are allowed",
                        "last_name": "contains control characters or line breaks; send one line of text"}
    api = site.http.post("/api/subscribers", headers=site.api,
                         json={"email": "dora@example.com", "first_name": "D" * 101})
    assert api.status_code == 422
    assert names(site) == {}


def test_the_api_stores_the_names_answers_them_and_the_email_greets_by_the_first_name(site: Site) -> None:
    added = site.http.post("/api/subscribers", headers=site.api,
                           json={"email": "dora@example.com", "funnel": "minimal", "name": "Kiss Dóra",
                                 "first_name": "Dóra", "last_name": "Kiss", "locale": "hu",
                                 "confirmed": True})
    assert added.status_code == 201, added.text
    assert (added.json()["first_name"], added.json()["last_name"]) == ("Dóra", "Kiss")
    guessed = site.http.post("/api/subscribers", headers=site.api,
                             json={"email": "kiss@example.com", "funnel": "minimal", "name": "Kiss Dóra",
                                   "locale": "hu", "confirmed": True})
    assert (guessed.json()["first_name"], guessed.json()["last_name"]) == (None, None)
    site.http.post("/api/subscribers", headers=site.api,
                   json={"email": "ann@example.com", "funnel": "minimal", "name": "Ann",
                         "confirmed": True})
    site.harness.tick()
    greetings = {m.rcpt_to: line.split(",")[0] for m in site.harness.transport.sent
                 for line in text_of(m).splitlines() if line.endswith(", this is magnet.")}
    # t/magnet.html writes "Hi {{ subscriber.first_name }}, ...": Kiss Dóra without a first name
    # is not greeted "Hi Kiss".
    assert greetings == {"dora@example.com": "Hi Dóra", "kiss@example.com": "Hi ",
                         "ann@example.com": "Hi Ann"}
    # An operator's later update sets the first name of a known subscriber.
    again = site.http.post("/api/subscribers", headers=site.api,
                           json={"email": "kiss@example.com", "first_name": "Dóra"})
    assert again.status_code == 200 and again.json()["first_name"] == "Dóra"
    listed = site.http.get("/api/subscribers", headers=site.api).json()["subscribers"]
    assert [(s["email"], s["first_name"]) for s in listed] == [
        ("dora@example.com", "Dóra"), ("kiss@example.com", "Dóra"), ("ann@example.com", None)]


def test_the_dashboard_shows_the_names_and_the_first_name_emails_use(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        dash.harness.add("dora@example.com", name="Kiss Dóra", locale="hu", first_name="Dóra",
                         last_name="Kiss")
        dash.harness.add("kiss@example.com", name="Kiss Dóra", locale="hu")
        dash.harness.add("ann@example.com", name="Ann")  # one word: taken as the first name
        assert log_in(dash.http).status_code == 303
        with dash.harness.db_engine.connect() as conn:
            ids = dict(conn.execute(sa.select(SUBSCRIBER.c.email_key, SUBSCRIBER.c.id)).all())
        pages = {key: dash.http.get(f"/dashboard/subscribers/{i}").text for key, i in ids.items()}
    assert "<dt>First name</dt><dd>Dóra</dd>" in pages["dora@example.com"]
    assert "<dt>Last name</dt><dd>Kiss</dd>" in pages["dora@example.com"]
    assert ("<dt>First name in emails</dt><dd>none: templates write their fallback</dd>"
            in pages["kiss@example.com"])
    assert "<dt>First name in emails</dt><dd>Ann (from the name)</dd>" in pages["ann@example.com"]
