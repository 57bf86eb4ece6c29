"""One email of a funnel rendered for a sample subscriber: shared by `preview` and `send-test`."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from engine.cli.main import Context
from engine.errors import EngineError, SequenceFileError, UnknownStepError, did_you_mean
from engine.mail.context import SAMPLE, Links, Subscriber
from engine.mail.preview import Preview, preview
from engine.mail.render import Renderer
from engine.sequences.languages import is_tag
from engine.sequences.plan import Plan
from engine.sequences.window import zone

DATA_KEYS = ("name", "first_name", "last_name", "email", "locale", "timezone", "fields", "magnet", "segment",
             "sent_at")


def load_plan(obj: Context, funnel: str) -> Plan:
    """The compiled funnel, or exit 1 with its file's errors or a 'did you mean' for an unknown id."""
    try:
        return obj.project.plan(funnel)
    except SequenceFileError as error:
        click.echo(str(error), err=True)
        click.echo(f"funnel '{funnel}' has errors; fix them (funnel validate) and run this again", err=True)
        sys.exit(1)
    except EngineError as error:
        click.echo(str(error), err=True)
        sys.exit(1)


def parse_data(data: str | None) -> dict[str, Any]:
    """The --data JSON object, checked: known keys, text values, `fields` an object."""
    if not data:
        return {}
    try:
        given = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(given, dict):
        raise click.BadParameter('write a JSON object, like {"name": "Ann"}', param_hint="--data")
    for key, value in given.items():
        if key not in DATA_KEYS:
            raise click.BadParameter(f"unknown key '{key}'; "
                                     f"{did_you_mean(key, DATA_KEYS, 'use ' + ', '.join(DATA_KEYS))}",
                                     param_hint="--data")
        expected = dict if key == "fields" else str
        if not isinstance(value, expected):
            kind = "an object of field names and values" if expected is dict else "text"
            raise click.BadParameter(f"'{key}' must be {kind}", param_hint="--data")
    if "sent_at" in given:
        _parse_sent_at(given["sent_at"])
    return given


def _parse_sent_at(text: str) -> datetime:
    """--data's sent_at: ISO 8601; without an offset it is the subscriber's local time."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"'sent_at' is not a date and time: '{text}'; write ISO 8601, "
                                 'like "2026-12-09 10:00" (the subscriber\'s local time) or '
                                 '"2026-12-09T09:00:00+00:00"', param_hint="--data") from None


def render_sample(plan: Plan, templates_dir: Path, step_id: str, given: dict[str, Any], *,
                  address: str = SAMPLE.email, links: Links | None = None,
                  locale: str | None = None, variant: str | None = None) -> Preview:
    """Render `step_id` of `plan` for the sample subscriber, with `given` (--data) overriding it:
    in the language `locale` (--locale, else --data's locale) reads, as `variant` if given."""
    if plan.email(step_id) is None:
        error = UnknownStepError(plan.funnel, step_id, [e.id for e in plan.emails()])
        raise click.BadParameter(str(error), param_hint="STEP")
    if locale is not None:
        check_locale(locale)
        given = {**given, "locale": locale}
    subscriber = Subscriber(
        email=str(given.get("email", address)), name=str(given.get("name", SAMPLE.name)),
        locale=str(given.get("locale", SAMPLE.locale)), timezone=str(given.get("timezone", "UTC")),
        fields={str(k): str(v) for k, v in dict(given.get("fields", {})).items()},
        # The sample's own names unless --data names someone else (whose first name is then
        # given, or taken from the name as for a real subscriber).
        given_first_name=given.get("first_name", None if "name" in given else SAMPLE.given_first_name),
        given_last_name=given.get("last_name", None if "name" in given else SAMPLE.given_last_name))
    sent_at = None
    if "sent_at" in given:
        sent_at = _parse_sent_at(given["sent_at"])
        if sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=zone(subscriber.timezone))
    shown = preview(plan, Renderer(templates_dir), step_id, subscriber, variant=variant, links=links,
                    magnet=given.get("magnet"), segment=given.get("segment"), sent_at=sent_at)
    assert shown is not None  # every language's plan has the same steps
    return shown


def check_locale(locale: str) -> None:
    """--locale is a language tag (en, hu, pt-BR)."""
    if not is_tag(locale):
        raise click.BadParameter(f"'{locale}' is not a language tag; write one like en, hu or pt-BR",
                                 param_hint="--locale")


LOCALE_HELP = ("The subscriber's locale, like hu or pt-BR: the email in that language (its exact "
               "tag, then its primary language, else the funnel's default; docs/languages.md), "
               "dates and numbers written its way.")
