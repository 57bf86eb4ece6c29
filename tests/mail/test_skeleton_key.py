"""All of an email's context but the personal values is a function of its skeleton key: the shipped funnels.

A proven template's email is its skeleton filled in, not rendered (personal.py): were
anything else in the context to differ between two emails of one key, one subscriber would
be sent what the other's context holds. So every email of every shipped funnel (the
examples and the starter `funnel init` writes; each language, variant, magnet and segment)
is composed for different people, deliveries and seconds, and the contexts compose hands
the renderer under one key must be equal once the personal values are set aside.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.mail.compose import Tracking, compose
from engine.mail.context import Subscriber
from engine.mail.links import SignedLinks
from engine.mail.personal import PERSONAL, Chain
from engine.mail.render import Rendered, Renderer
from engine.project.folder import Project
from engine.sequences.plan import EmailStep, PathKind, Plan
from tests.flow.plans import make_plan

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [Project(ROOT), Project(ROOT / "engine" / "project" / "starter")]
# Each language of the funnels, a region of one, and languages they do not have.
LOCALES = ("en", "en-GB", "hu", "hu-HU", "de", "")
TRACKED = Tracking("https://funnel.example")


def _emails(project: Project) -> Iterator[tuple[Plan, EmailStep, str]]:
    """(plan as read, email as read, locale) for every email, language and variant of a project's funnels."""
    for loaded in project.load_plans().funnels:
        plan = loaded.plan
        for email in plan.emails():
            for variant in (None, *(v.id for v in email.variants)):
                for locale in LOCALES:
                    read = plan.as_read(email.id, locale, variant)
                    assert read is not None
                    yield read[0], read[1], locale


class _Handed(Exception):
    """What compose handed the renderer: raised to stop it there."""

    def __init__(self, context: dict[str, Any], key: tuple[object, ...]) -> None:
        super().__init__()
        self.context, self.key = context, key


class _Recording(Renderer):
    def render(self, email: EmailStep, context: dict[str, Any], key: tuple[object, ...] = ()) -> Rendered:
        raise _Handed(context, (email.template, *key))  # the renderer's own key: the template first


def _rest(context: dict[str, Any]) -> dict[str, Any]:
    """The context less what the skeleton marks: the personal values and the survey's answer links."""
    rest = {name: value for name, value in context.items() if name not in PERSONAL}
    survey = rest["survey"]
    rest["survey"] = {**survey, "questions": [
        {**q, "answers": [{**a, "url": "marked"} for a in q["answers"]]} for q in survey["questions"]]}
    if "sent_at" in rest:
        # In the key to the minute only: no dated template is proven (see the test below).
        rest["sent_at"] = rest["sent_at"].key()
    return rest


_PEOPLE = [
    Subscriber("ann@example.com", "Ann Lee", "en", "Europe/Budapest", {"city": "Pécs"}, "Ann", "Lee"),
    Subscriber("bob@example.org", "<Bob> & 'Co'", "en", "America/New_York"),
]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.root.name)
def test_emails_of_one_key_have_one_context_but_for_the_personal_values(project: Project) -> None:
    renderer = _Recording(project.templates_dir)
    seen: dict[tuple[object, ...], tuple[dict[str, Any], str]] = {}
    people: dict[tuple[object, ...], set[str]] = {}
    composed = 0
    for plan, email, locale in _emails(project):
        for magnet in (None, *(m.id for m in plan.magnets), "gone"):
            for segment in (None, *(s.id for s in plan.segments)):
                for n, person in enumerate(_PEOPLE):
                    subscriber = Subscriber(person.email, person.name, locale, person.timezone, person.fields,
                                            person.given_first_name, person.given_last_name)
                    sent = datetime(2026, 3, 2, 9, 15, 7 + 40 * n, tzinfo=UTC)
                    message_id = f"m{composed}@example.com"
                    links = SignedLinks("https://funnel.example", "secret", message_id, sent)
                    with pytest.raises(_Handed) as handed:
                        compose(plan, email, subscriber, links, renderer, message_id=message_id,
                                date=sent, tracking=TRACKED, magnet=magnet, segment=segment)
                    composed += 1
                    key, rest = handed.value.key, _rest(handed.value.context)
                    first, where = seen.setdefault(key, (rest, f"{email.id} for {person.email}"))
                    assert rest == first, f"{plan.funnel} {email.id}: key {key} is also {where}'s"
                    people.setdefault(key, set()).add(person.email)
    # Not a test of nothing: the two people's emails (other links, seconds, zones) share most keys.
    assert sum(len(emails) == len(_PEOPLE) for emails in people.values()) > 0.9 * len(seen)


# Awkward people: markup, quotes and ampersands, no name, a marker's look, right-to-left, a long name.
_AWKWARD = [
    Subscriber("zoe@example.com", "Zoë <b>&amp;</b> \"Q\" 'O'", "hu", "Europe/Budapest",
               {"city": "<i>Pécs</i>"}, "Zoë & Co", "O'Brien"),
    Subscriber("x@example.com"),
    Subscriber("q@example.com", "qzfm0mfzq", "en-GB", "Asia/Tokyo", {}, "qzfm1mfzq"),
    Subscriber("r@example.com", "שרה כהן", "de", "America/New_York", {}, "שרה"),
    Subscriber("l@example.com", "Maximiliane " * 8, "en", "UTC", {}, "  Max  "),
]


class Today(Renderer):
    """The renderer with no template proven: every email rendered and compared with its skeleton."""

    def _chains(self, template: str) -> tuple[Chain, ...] | None:
        return None


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.root.name)
def test_every_shipped_email_is_byte_for_byte_what_rendering_it_gives(project: Project) -> None:
    proven, today = Renderer(project.templates_dir), Today(project.templates_dir)
    sent = datetime(2026, 3, 2, 9, 15, 7, tzinfo=UTC)
    count = 0
    for plan, email, locale in _emails(project):
        if locale not in ("en", "hu"):
            continue
        for person in _AWKWARD:
            subscriber = Subscriber(person.email, person.name, locale, person.timezone, person.fields,
                                    person.given_first_name, person.given_last_name)
            messages = []
            for renderer in (proven, today):
                links = SignedLinks("https://funnel.example", "secret", "m1@example.com", sent)
                messages.append(compose(plan, email, subscriber, links, renderer, message_id="m1@example.com",
                                        date=sent, tracking=TRACKED).data)
            assert messages[0] == messages[1], f"{plan.funnel} {email.id} ({locale}) for {person.email}"
            count += 1
    # The proof was made and used: not a comparison of two renders of today's path only.
    assert count > 100 and proven.text_parts.hits > count * 0.7
    assert sum(chains is not None for chains in proven._as_is.values()) > 10


def test_a_dated_template_is_not_proven_and_writes_each_emails_own_seconds(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text('<p>{{ sent_at | time("HH:mm:ss") }} {{ subscriber.name }}</p>')
    renderer = Renderer(tmp_path)
    plan = make_plan()
    email = next(e for e in plan.emails() if e.path is PathKind.NURTURE)
    for second in (7, 8, 59):
        sent = datetime(2026, 3, 2, 9, 15, second, tzinfo=UTC)
        links = SignedLinks("https://funnel.example", "secret", "m1@example.com", sent)
        data = compose(plan, email, Subscriber("a@example.com", "Ann"), links, renderer,
                       message_id="m1@example.com", date=sent, tracking=TRACKED).data
        assert f"09:15:{second:02d} Ann".encode() in data
    assert renderer._chains("t.html") is None
