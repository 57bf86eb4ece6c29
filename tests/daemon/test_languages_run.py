"""The starter in English and Hungarian under a real `funnel run` over SMTP (issue 16, languages).

Three people sign up to the shipped starter (engine/project/starter, `funnel init`'s):
one gives `locale: hu`, one gives none but their browser says Accept-Language hu-HU,
one gives `de`, which the funnel does not speak. Each confirms through the page their
confirmation links to; the guide that follows writes tomorrow's date. The Hungarians get
the Hungarian subject, template, page and date; the German gets the English default with
an English date. SQLite and PostgreSQL (`db_url`).
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import sqlalchemy as sa

from engine.mail.dates import Moment, format_date_value
from engine.store.db import make_engine
from engine.store.tables import SUBSCRIBER
from tests.daemon.test_live_edit_run import _Run, _running, _until
from tests.support.smtp_server import RecordingHandler

STARTER = Path(__file__).resolve().parents[2] / "engine" / "project" / "starter"
CONFIRM = {
    "hu": "Erősítsd meg a címedet, és küldjük a kovász-útmutatót",
    "en": "Please confirm your email to get the starter guide",
}
GUIDE = {"hu": "Megérkezett a kovász-útmutatód", "en": "Your sourdough starter guide is here"}
TOMORROW = {"hu": "Az első napot kezdd holnap, {date}:", "en": "Start day one tomorrow, {date}:"}
PAGE = {
    "hu": ("Kérjük, erősítsd meg a címedet", "Köszönjük, a címedet megerősítetted"),
    "en": ("Please confirm your address", "Thank you, your address is confirmed"),
}


def _messages(handler: RecordingHandler, rcpt: str, subject: str) -> list[EmailMessage]:
    found = []
    for message in handler.received:
        parsed = message_from_bytes(message.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if rcpt in message.rcpt_tos and str(parsed["Subject"]) == subject:
            found.append(parsed)
    return found


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _sign_up(run: _Run, email: str, locale: str | None, accept_language: str | None) -> None:
    """A browser form post (no JSON), as a landing page's <form> sends it."""
    form = {"email": email, "funnel": "home-bakery", **({"locale": locale} if locale else {})}
    headers = {"Accept-Language": accept_language} if accept_language else {}
    answer = httpx.post(f"http://127.0.0.1:{run.port}/subscribe", data=form, headers=headers, timeout=10.0)
    assert answer.status_code == 303, answer.text


def _confirm(handler: RecordingHandler, run: _Run, rcpt: str, language: str) -> None:
    """Open the confirmation email's link (a page in `language`) and press its button."""
    _until(
        f"the {language} confirmation to {rcpt}", lambda: bool(_messages(handler, rcpt, CONFIRM[language]))
    )
    html = _html(_messages(handler, rcpt, CONFIRM[language])[0])
    link = re.search(r'href="(http://127\.0\.0\.1:\d+/confirm/[^"]+)"', html)
    assert link is not None, html
    page = httpx.get(link.group(1), timeout=10.0)
    assert page.status_code == 200 and PAGE[language][0] in page.text, page.text
    assert f'<html lang="{language}">' in page.text
    done = httpx.post(link.group(1), timeout=10.0)
    assert done.status_code == 200 and PAGE[language][1] in done.text, done.text


def _assert_guide(handler: RecordingHandler, rcpt: str, language: str) -> None:
    """The guide in `language`, with tomorrow (from its Date header, UTC) written that language's way."""
    _until(f"the {language} guide to {rcpt}", lambda: bool(_messages(handler, rcpt, GUIDE[language])))
    message = _messages(handler, rcpt, GUIDE[language])[0]
    sent = message["Date"].datetime
    tomorrow = format_date_value(Moment.of(sent + timedelta(days=1), language, "UTC"), "weekday")
    text = " ".join(_html(message).split())
    assert TOMORROW[language].format(date=tomorrow) in text, text


def _locales(db_url: str) -> dict[str, str]:
    db_engine = make_engine(db_url)
    try:
        with db_engine.connect() as conn:
            return {
                r.email: r.locale for r in conn.execute(sa.select(SUBSCRIBER.c.email, SUBSCRIBER.c.locale))
            }
    finally:
        db_engine.dispose()


def test_hungarians_get_hungarian_mail_pages_and_dates_and_an_unknown_locale_the_default(
    db_url: str, tmp_path: Path
) -> None:
    project = tmp_path / "bakery"
    shutil.copytree(STARTER, project)
    with _running(project, db_url, tmp_path) as (run, handler):
        _sign_up(run, "anna@example.com", "hu", None)
        _sign_up(run, "bence@example.com", None, "hu-HU,hu;q=0.9,en-US;q=0.8,en;q=0.7")
        _sign_up(run, "dieter@example.com", "de", "de-DE,de;q=0.9")
        for rcpt, language in (
            ("anna@example.com", "hu"),
            ("bence@example.com", "hu"),
            ("dieter@example.com", "en"),
        ):
            _confirm(handler, run, rcpt, language)
            _assert_guide(handler, rcpt, language)
        assert run.stop() == 0
    # Nobody got the other language's version of anything.
    assert not _messages(handler, "anna@example.com", CONFIRM["en"])
    assert not _messages(handler, "dieter@example.com", CONFIRM["hu"])
    assert _locales(db_url) == {
        "anna@example.com": "hu",
        "bence@example.com": "hu",
        "dieter@example.com": "de",
    }
