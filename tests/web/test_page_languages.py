"""The pages behind email links in the subscriber's language, and Accept-Language at signup (issue 16).

The minimal funnel declares no languages: its pages speak the subscriber's locale where the
catalogue has it (engine/web/catalogue.py: en, hu), else English.
"""

from __future__ import annotations

import sqlalchemy as sa

from engine.store.tables import SUBSCRIBER
from engine.web.catalogue import CATALOGUE, language_of, translator
from tests.web.conftest import Site
from tests.web.mailbox import link, links


def _confirmed(site: Site, email: str, locale: str) -> None:
    answer = site.http.post("/subscribe", json={"email": email, "funnel": "minimal", "locale": locale})
    assert answer.status_code == 201
    site.harness.tick()
    confirmation = [m for m in site.harness.transport.sent if m.rcpt_to == email][-1]
    page = site.http.get(link(confirmation, "/confirm/"))
    expected = "Kérjük, erősítsd meg a címedet" if locale.startswith("hu") else "Please confirm your address"
    assert expected in page.text, page.text
    assert site.http.post(link(confirmation, "/confirm/")).status_code == 200
    site.harness.tick()
    site.harness.tick()


def _locale(site: Site, email: str) -> str:
    with site.harness.db_engine.connect() as conn:
        return str(
            conn.execute(sa.select(SUBSCRIBER.c.locale).where(SUBSCRIBER.c.email == email)).scalar_one()
        )


def test_answer_and_unsubscribe_pages_speak_hungarian_to_a_hungarian(site: Site) -> None:
    _confirmed(site, "anna@example.com", "hu-HU")
    survey = [m for m in site.harness.transport.sent if m.rcpt_to == "anna@example.com"][-1]
    answer = next(p for p in links(survey) if p.startswith("/a/"))
    page = site.http.get(answer)
    assert '<html lang="hu">' in page.text and "Még egy kattintás, és elmentjük a válaszodat" in page.text
    assert "Köszönjük, a válaszodat elmentettük" in site.http.post(answer).text
    unsubscribe = link(survey, "/u/")
    page = site.http.get(unsubscribe)
    assert "Leiratkozol ezzel a címmel: anna@example.com?" in page.text
    assert "Semmilyen marketinglevelet nem kérek" in page.text
    done = site.http.post(unsubscribe, data={"scope": "all"})
    assert "Leiratkoztál" in done.text
    assert "Erre a címre nem küldünk több marketinglevelet: anna@example.com." in done.text


def test_a_locale_the_pages_do_not_speak_gets_english(site: Site) -> None:
    _confirmed(site, "dieter@example.com", "de")
    survey = [m for m in site.harness.transport.sent if m.rcpt_to == "dieter@example.com"][-1]
    page = site.http.get(link(survey, "/u/"))
    assert '<html lang="en">' in page.text and "Unsubscribe dieter@example.com?" in page.text


def test_the_browsers_language_is_the_locale_of_a_form_without_one(site: Site) -> None:
    for email, header in (
        ("bence@example.com", "hu-HU,hu;q=0.9,en;q=0.8"),
        ("paul@example.com", "fr-FR,fr"),
        ("zoe@example.com", None),
    ):
        headers = {"Accept-Language": header} if header else {}
        answer = site.http.post("/subscribe", data={"email": email, "funnel": "minimal"}, headers=headers)
        assert answer.status_code == 303
    # minimal declares no languages: the browser's first language, without its region.
    assert _locale(site, "bence@example.com") == "hu"
    assert _locale(site, "paul@example.com") == "fr"
    assert _locale(site, "zoe@example.com") == "en"  # no header: the default
    given = site.http.post(
        "/subscribe",
        json={"email": "gwen@example.com", "funnel": "minimal", "locale": "cy"},
        headers={"Accept-Language": "hu"},
    )
    assert given.status_code == 201 and _locale(site, "gwen@example.com") == "cy"  # the form's field wins


def test_every_hungarian_sentence_fills_in_the_values_the_english_one_has() -> None:
    assert language_of("hu-HU") == "hu" and language_of("de") == "en" and language_of(None) == "en"
    english, hungarian = translator("en"), translator("hu")
    values = {"email": "<x@y>", "title": "T1", "funnel": "F1"}
    shown = {"email": "&lt;x@y&gt;", "title": "T1", "funnel": "F1"}  # escaped into the page
    for sentence in CATALOGUE["hu"]:
        rendered = str(hungarian(sentence, **values))
        for name in values:
            assert (f"{{{name}}}" in sentence) == (shown[name] in rendered), (sentence, name)
        assert "<x@y>" not in rendered
        assert str(english(sentence, **values)) != rendered
