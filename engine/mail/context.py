"""The variables a template can use, and the sample subscriber that previews use."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.mail import names
from engine.mail.dates import Moment
from engine.sequences.languages import writing_locale
from engine.sequences.plan import EmailStep, Plan


class Links(Protocol):
    """Makes the URLs an email carries; the live one signs tokens, the preview one does not."""

    def unsubscribe(self, email: EmailStep) -> str:
        """The unsubscribe page for this email's recipient."""
        ...  # pragma: no cover

    def confirm(self) -> str:
        """The double opt-in confirmation page."""
        ...  # pragma: no cover

    def answer(self, question: str, answer: str) -> str:
        """The link that records one survey answer."""
        ...  # pragma: no cover

    def click(self, url: str) -> str:
        """The link to put in place of `url` so that a click on it is counted."""
        ...  # pragma: no cover

    def pixel(self) -> str:
        """The open pixel's image URL; empty when opens are not counted."""
        ...  # pragma: no cover


@dataclass(frozen=True)
class PreviewLinks:
    """Plain, unsigned links for previews and simulations: nothing is recorded by them."""

    base_url: str = "http://127.0.0.1:8000"

    def unsubscribe(self, email: EmailStep) -> str:
        """A preview unsubscribe link."""
        return f"{self.base_url}/u/preview-{email.id}"

    def confirm(self) -> str:
        """A preview confirmation link."""
        return f"{self.base_url}/confirm/preview"

    def answer(self, question: str, answer: str) -> str:
        """A preview survey-answer link."""
        return f"{self.base_url}/a/preview-{question}-{answer}"

    def click(self, url: str) -> str:
        """`url` as it is: a preview counts no clicks."""
        return url

    def pixel(self) -> str:
        """No pixel: a preview counts no opens."""
        return ""


@dataclass(frozen=True)
class Subscriber:
    """What templates may know about the person an email goes to."""

    email: str
    name: str = ""
    locale: str = "en"
    timezone: str = "UTC"
    fields: dict[str, str] = field(default_factory=dict)
    given_first_name: str | None = None  # as the person gave it (a form, a CSV, the API)
    given_last_name: str | None = None

    @property
    def first_name(self) -> str:
        """The first name given, or one taken from the name where that is safe; else empty (names.py)."""
        return names.first_name(self.name, self.locale, self.given_first_name)

    @property
    def last_name(self) -> str:
        """The last name as given; never guessed."""
        return names.tidy(self.given_last_name)


SAMPLE = Subscriber(email="alex.morgan@example.com", name="Alex Morgan", given_first_name="Alex",
                    given_last_name="Morgan")
# Forms may leave the name out: templates must render for such subscribers too.
SAMPLES = (SAMPLE, Subscriber(email="someone@example.com"))
# The names a template may use; the validator reports any other as undefined.
TOP_LEVEL = ("subscriber", "funnel", "sender", "magnet", "survey", "segment", "vars",
             "email", "unsubscribe_url", "confirm_url", "postal_address",
             "sent_at", "deadline", "days", "hours", "weeks", "locale")


def template_context(plan: Plan, email: EmailStep, subscriber: Subscriber, links: Links, *,
                     magnet: str | None = None, segment: str | None = None,
                     uses: Container[str] | None = None,
                     sent_at: datetime | None = None, dated: bool = True) -> dict[str, Any]:
    """Everything a template of `plan` sees when `email` goes to `subscriber` at `sent_at` (default: now).

    With `uses` (the names the template and subject reference), links nobody shows are
    left empty instead of signed: each costs an HMAC per message. `dated=False` (the
    template writes no date: `Renderer.dated`) leaves `sent_at` out.
    """
    def used(name: str) -> bool:
        return uses is None or name in uses

    chosen = plan.magnet(magnet)
    seg = plan.segment(segment or email.segment)
    sender_name, sender_address = plan.sender_parts
    survey: dict[str, Any] = {"questions": []}
    if plan.survey and used("survey"):
        survey["questions"] = [
            {"id": q.id, "text": q.text,
             "answers": [{"id": a, "label": label, "url": links.answer(q.id, a)}
                         for a, label in q.answers]}
            for q in plan.survey.questions]
    context: dict[str, Any] = {
        "subscriber": {"email": subscriber.email, "name": subscriber.name,
                       "first_name": subscriber.first_name, "last_name": subscriber.last_name,
                       "locale": subscriber.locale,
                       "timezone": subscriber.timezone, "fields": dict(subscriber.fields)},
        "funnel": {"id": plan.funnel, "name": plan.name},
        "sender": {"name": sender_name, "address": sender_address,
                   "postal_address": plan.postal_address},
        "magnet": {"id": chosen.id, "title": chosen.title, "download_url": chosen.download_url},
        "survey": survey,
        "segment": {"id": seg.id, "name": seg.name} if seg else {"id": "", "name": ""},
        "vars": dict(plan.vars),
        "email": {"id": email.id, "role": email.role.value, "path": email.path.value,
                  "last_chance": email.last_chance},
        "unsubscribe_url": links.unsubscribe(email),
        "confirm_url": links.confirm() if used("confirm_url") else "",
        "postal_address": plan.postal_address,
        "locale": writing_locale(subscriber.locale, plan.language),
    }
    if dated:
        context["sent_at"] = Moment.of(sent_at or datetime.now(UTC), context["locale"], subscriber.timezone)
    return context


def skeleton_key(plan: Plan, email: EmailStep, context: dict[str, Any], *,
                 magnet: str | None = None, segment: str | None = None,
                 dated: bool = True) -> tuple[object, ...]:
    """What all of `context` but the personal values depends on: emails of one key share a skeleton.

    The renderer adds the template and the personal values' shape (textpart.py). It may
    send a proven template's skeleton filled in without rendering the email
    (personal.py), so the rest of the context must be a function of this key: the plan
    (funnel and language, within the one release a renderer serves), the email (its id;
    a variant differs in subject and template only), the magnet and segment chosen, the
    locale numbers and dates are written in, and the send time to the minute (dated
    templates only; personal.py proves none that is dated, as a date may show the
    seconds). Signed links are personal (unsubscribe_url, confirm_url, the survey's answer
    links); tests/mail/test_skeleton_key.py checks the rest over the shipped funnels.
    """
    key: tuple[object, ...] = (plan.funnel, plan.language, email.id, magnet, segment, context["locale"])
    if dated:
        key = (*key, *context["sent_at"].key())
    return key
