"""Dates in templates: the send time and deadlines in the subscriber's zone, written in their locale."""

from __future__ import annotations

import dataclasses
import email
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from engine.mail.compose import Tracking, compose
from engine.mail.context import PreviewLinks, Subscriber
from engine.mail.dates import Moment
from engine.mail.render import Renderer, make_environment
from engine.project.folder import Project
from engine.sequences.plan import PathKind
from tests.flow.plans import make_plan
from tests.support.project import minimal_project

# Wednesday 9 December 2026, 23:30 UTC: already Thursday in Berlin, still Wednesday in New York.
LATE = datetime(2026, 12, 9, 23, 30, tzinfo=UTC)
ENV = make_environment(Path("."))


def _render(source: str, when: datetime, locale: str, timezone: str) -> str:
    return ENV.from_string(source).render(sent_at=Moment.of(when, locale, timezone))


@pytest.mark.parametrize(("locale", "timezone", "expected"), [
    ("en", "America/New_York", "Wednesday, December 9, 2026 | ends Saturday, December 12 | 6:30\u202fPM"),
    ("de", "Europe/Berlin", "Donnerstag, 10. Dezember 2026 | ends Sonntag, 13. Dezember | 00:30"),
    ("en_GB", "Europe/Berlin", "Thursday, 10 December 2026 | ends Sunday 13 December | 00:30"),
    ("de-AT", "America/New_York", "Mittwoch, 9. Dezember 2026 | ends Samstag, 12. Dezember | 18:30"),
])
def test_dates_are_written_in_the_subscribers_locale_and_zone(locale: str, timezone: str,
                                                              expected: str) -> None:
    source = ("{{ sent_at | date('full') }} | ends {{ deadline(days=3) | date('weekday') }}"
              " | {{ sent_at | time }}")
    assert _render(source, LATE, locale, timezone) == expected


def test_named_formats_and_patterns() -> None:
    assert _render("{{ sent_at }}", LATE, "en", "UTC") == "December 9, 2026"
    assert _render("{{ sent_at | date }}", LATE, "fr", "UTC") == "9 décembre 2026"
    assert _render("{{ sent_at | date('short') }}", LATE, "de", "UTC") == "09.12.26"
    assert _render("{{ sent_at | date('day') }} {{ sent_at | date('month') }}", LATE, "en", "UTC") \
        == "December 9 December 2026"
    # A pattern fixes the order; the names are still the subscriber's language.
    assert _render("ends {{ (sent_at + days(3)) | date('EEEE d MMMM') }}", LATE, "de", "UTC") \
        == "ends Samstag 12 Dezember"
    assert _render("{{ deadline(weeks=1) | datetime('EEEE d MMMM, HH:mm') }}", LATE, "en", "UTC") \
        == "Wednesday 16 December, 23:30"
    assert _render("{{ sent_at | datetime('short') }}", LATE, "en_GB", "Europe/London") \
        == "09/12/2026, 23:30"
    assert _render("© {{ sent_at.year }}", LATE, "en", "Pacific/Auckland") == "© 2026"


@pytest.mark.parametrize("locale", ["xx", "", "klingon", "en_XX", "12"])
def test_an_unknown_locale_or_zone_writes_english_in_utc(locale: str) -> None:
    assert _render("{{ sent_at | date('full') }} {{ sent_at | time }}", LATE, locale, "Mars/Olympus") \
        == "Wednesday, December 9, 2026 11:30\u202fPM"  # CLDR's narrow space before PM


def test_a_deadline_in_days_keeps_the_time_of_day_across_a_clock_change() -> None:
    # Saturday 28 March 2026, 23:30 in Berlin; the clocks go forward that night at 02:00.
    sent = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)
    source = ("{{ deadline(days=1) | datetime('EEEE d MMMM HH:mm') }}"
              " / {{ (sent_at + hours(24)) | datetime('EEEE d MMMM HH:mm') }}")
    # One day later is Sunday 23:30; 24 hours later is already Monday, as the clock changed.
    assert _render(source, sent, "en", "Europe/Berlin") == "Sunday 29 March 23:30 / Monday 30 March 00:30"
    moment = Moment.of(sent, "en", "Europe/Berlin").plus(days=1)
    assert moment.at.utcoffset() == timedelta(hours=2) and moment.at.hour == 23
    # Back in autumn: 10:00 stays 10:00, though 25 hours pass.
    autumn = Moment.of(datetime(2026, 10, 24, 8, tzinfo=UTC), "en", "Europe/Berlin")
    later = autumn.plus(days=1)
    assert later.at.hour == 10
    assert later.at.astimezone(UTC) - autumn.at.astimezone(UTC) == timedelta(hours=25)
    # A wall time the clock skips (02:30 on 29 March) is the real time it denotes.
    skipped = Moment.of(datetime(2026, 3, 28, 1, 30, tzinfo=UTC), "en", "Europe/Berlin").plus(days=1)
    assert (skipped.at.hour, skipped.at.minute) == (3, 30)


@pytest.mark.parametrize(("source", "message"), [
    ("{{ sent_at + days(3) | date }}", "put the sum in brackets, like {{ (sent_at + days(3)) | date }}"),
    ("{{ 'soon' | date }}", "'date' needs a date, like sent_at or deadline(days=3), not str 'soon'"),
    ("{{ sent_at | time('zzz qq') }}", "time format 'zzz qq' does not work"),
])
def test_a_misused_date_says_what_to_write(source: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        _render(source, LATE, "en", "UTC")
    assert message in str(caught.value)


def test_a_composed_email_is_dated_when_it_is_sent_for_each_subscriber(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text(
        "<p>Hi {{ subscriber.name }}, the offer ends {{ deadline(days=3) | date('weekday') }}.</p>")
    renderer, plan = Renderer(tmp_path), make_plan()
    step = next(e for e in plan.emails() if e.path is PathKind.SALES)
    links = PreviewLinks("https://funnel.example")
    people = [Subscriber("ann@example.com", "Ann", locale="en", timezone="America/New_York"),
              Subscriber("bea@example.com", "Bea", locale="de", timezone="Europe/Berlin"),
              Subscriber("cy@example.com", "Cy", locale="en", timezone="America/New_York")]
    texts = []
    for person in people:
        outgoing = compose(plan, step, person, links, renderer, message_id=f"{person.name}@x",
                           date=LATE, tracking=Tracking("https://funnel.example", False, False))
        message = email.message_from_bytes(outgoing.data, policy=default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        texts.append(str(body.get_content()).strip())
    assert texts == ["Hi Ann, the offer ends Saturday, December 12.",
                     "Hi Bea, the offer ends Sonntag, 13. Dezember.",
                     "Hi Cy, the offer ends Saturday, December 12."]


def test_validate_knows_the_date_variables_and_suggests_them(tmp_path: Path) -> None:
    folder = minimal_project(tmp_path / "project")
    o2 = folder / "templates" / "t" / "o2.html"
    o2.write_text('{% extends "layout.html" %}{% block body %}<p>Hi {{ subscriber.first_name }}, '
                  "ends {{ deadline(days=3) | date('weekday') }}, "
                  "{{ (sent_at + days(1) + hours(2)) | datetime('short') }}, "
                  "{{ sent_at | time }} {{ sent_at.year }}.</p>{% endblock %}")
    assert Project(folder).check().errors == []
    o2.write_text('{% extends "layout.html" %}{% block body %}<p>{{ sent_ta | date }}</p>{% endblock %}')
    (error,) = Project(folder).check().errors
    assert "undefined variable 'sent_ta'; did you mean 'sent_at'?" in str(error)
    o2.write_text('{% extends "layout.html" %}{% block body %}<p>{{ sent_at + days(2) | date }}'
                  "</p>{% endblock %}")
    (error,) = Project(folder).check().errors
    assert "put the sum in brackets" in str(error) and "t/o2.html:1:" in str(error)


def test_only_an_email_that_writes_a_date_is_dated(tmp_path: Path) -> None:
    (tmp_path / "plain.html").write_text("<p>Hi {{ subscriber.name }}</p>")
    (tmp_path / "sent.html").write_text("<p>{{ sent_at.year }}</p>")
    (tmp_path / "deadline.html").write_text("<p>{{ deadline(days=1) }}</p>")
    (tmp_path / "filter.html").write_text("<p>{{ vars.race_day | date('weekday') }}</p>")
    (tmp_path / "outer.html").write_text('{% include "filter.html" %}')
    renderer = Renderer(tmp_path)
    assert not renderer.dated("plain.html", "Hello {{ subscriber.name }}")
    assert renderer.dated("plain.html", "News of {{ sent_at | date('month') }}")
    for name in ("sent.html", "deadline.html", "filter.html", "outer.html"):
        assert renderer.dated(name, "Hi"), name


def test_a_date_in_vars_is_written_in_the_subscribers_locale(tmp_path: Path) -> None:
    # No sent_at or deadline by name: the filter alone makes the email dated, so sent_at
    # (whose locale the filter writes in) is in its context. (Any date value: vars here.)
    (tmp_path / "t.html").write_text("<p>Race day: {{ vars.race_day | date('weekday') }}</p>")
    renderer = Renderer(tmp_path)
    plan = dataclasses.replace(make_plan(), vars={"race_day": date(2026, 10, 11)})
    step = next(e for e in plan.emails() if e.path is PathKind.SALES)
    bea = Subscriber("bea@example.com", "Bea", locale="de", timezone="Europe/Berlin")
    outgoing = compose(plan, step, bea, PreviewLinks("https://funnel.example"), renderer,
                       message_id="bea@x", date=LATE,
                       tracking=Tracking("https://funnel.example", False, False))
    message = email.message_from_bytes(outgoing.data, policy=default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    assert str(body.get_content()).strip() == "Race day: Sonntag, 11. Oktober"
