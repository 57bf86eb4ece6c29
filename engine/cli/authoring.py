"""The marketer's commands: validate, simulate, preview, schema."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from email.utils import formataddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli.main import Context, main, pass_project
from engine.cli.sample import LOCALE_HELP, check_locale, parse_data, render_sample
from engine.errors import EngineError, did_you_mean, display_path
from engine.flow.actions import End, EnterPath, EnterSegment, Send, Skip
from engine.flow.simulate import Entry, Ignored, Script, ScriptedAnswer, Timeline, simulate
from engine.flow.state import Event, EventType
from engine.mail.context import SAMPLE, PreviewLinks, Subscriber, template_context
from engine.mail.render import Renderer
from engine.project.folder import LoadedBroadcast
from engine.project.release import make_release
from engine.project.summary import summarize
from engine.sequences.broadcast_model import json_schema as broadcast_schema
from engine.sequences.model import json_schema
from engine.sequences.plan import Plan, Role
from engine.sequences.values import format_delay, parse_delay
from engine.sequences.window import zone

if TYPE_CHECKING:
    from engine.subscribers.impact import Impact


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--against-db", is_flag=True,
              help="Also count the subscribers in the database that the changes affect.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: errors, warnings, funnels and the --against-db report.")
@pass_project
def validate(obj: Context, paths: tuple[Path, ...], against_db: bool, as_json: bool) -> None:
    """Check sequence and broadcast files (default: the project's sequences/ and broadcasts/);
    exit 1 on any error. A broadcast file named alone is checked with the funnel it goes to."""
    result = obj.project.check(list(paths) or None)
    report: dict[str, Any] = {"errors": [str(e) for e in sorted(set(result.errors))],
                              "warnings": [str(w) for w in sorted(set(result.warnings))],
                              "funnels": [summarize(loaded) for loaded in result.funnels],
                              "broadcasts": [_broadcast_summary(loaded) for loaded in result.broadcasts],
                              "against_db": None}
    # Errors, then warnings (they fail nothing), then each funnel's and broadcast's summary.
    for line in () if as_json else (*report["errors"], *report["warnings"], *report["funnels"],
                                    *report["broadcasts"]):
        click.echo(line)
    if as_json and (result.errors or not against_db):
        click.echo(json.dumps(report, indent=2))
    if not result.files:
        click.echo(f"no sequence files in {obj.project.sequences_dir}", err=True)
        sys.exit(1)
    if result.errors:
        count = len(set(result.errors))
        bad = sum(1 for errs in result.by_file.values() if errs)
        click.echo(f"{count} error{'s' if count != 1 else ''} in {bad} "
                   f"file{'s' if bad != 1 else ''}", err=True)
        sys.exit(1)
    if against_db:
        plans = {loaded.plan.funnel: loaded.plan for loaded in result.funnels}
        try:
            impact = _against_database(obj, plans, complete=not paths)
        except EngineError as error:
            click.echo(str(error), err=True)
            sys.exit(1)
        if as_json:
            click.echo(json.dumps({**report, "against_db": impact.as_json()}, indent=2))
            return
        for line in impact.lines():
            click.echo(line)


@main.command("simulate")
@click.argument("funnel")
@click.option("--answer", "answers", multiple=True, metavar="QUESTION=ANSWER[@OFFSET]",
              help="A survey answer; with @OFFSET (like @0 for 'on the signup form') at that "
                   "time after signup, else an hour after the survey email.")
@click.option("--event", "events", multiple=True, metavar="TYPE[:NAME]@OFFSET",
              help="An event after signup, like purchase@20d, purchase:sub3@20d, unsubscribe@9d.")
@click.option("--start", help="Signup time, ISO 8601 (default: now, UTC).")
@click.option("--timezone", default="UTC", show_default=True, help="The subscriber's time zone.")
@click.option("--magnet", help="The lead magnet signed up for (default: the first).")
@click.option("--days", default=120, show_default=True, type=click.IntRange(1, 3650),
              help="How many days to simulate.")
@click.option("--idle", is_flag=True,
              help="A subscriber who opens and clicks nothing (shows win-back and sunset); "
                   "by default they open every email an hour after it arrives.")
@click.option("--variant", metavar="ID",
              help="Show this variant of every email that has it (default: the one the "
                   "experiment's rule picks for this person; docs/experiments.md).")
@click.option("--locale", metavar="TAG", help=LOCALE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the emails as a JSON array.")
@pass_project
def simulate_command(obj: Context, funnel: str, answers: tuple[str, ...], events: tuple[str, ...],
                     start: str | None, timezone: str, magnet: str | None, days: int,
                     idle: bool, variant: str | None, locale: str | None, as_json: bool) -> None:
    """Print the dated timeline one subscriber would receive."""
    plan = _plan(obj, funnel)
    if variant is not None:
        _check_variant(plan, variant)
    if zone(timezone).key != timezone and timezone != "UTC":
        raise click.BadParameter(f"unknown time zone '{timezone}'; write an IANA name like "
                                 "Europe/Budapest or America/New_York", param_hint="--timezone")
    begin = _parse_start(start)
    script = Script(start=begin, timezone=timezone, magnet=magnet,
                    answers=tuple(_parse_answer(plan, a) for a in answers),
                    events=tuple(_parse_event(e, begin) for e in events), days=days,
                    reader=not idle, variant=variant)
    timeline = simulate(plan, script)
    renderer = Renderer(obj.project.templates_dir)
    if locale is not None:
        check_locale(locale)
    subscriber = Subscriber(SAMPLE.email, SAMPLE.name, locale=locale or SAMPLE.locale, timezone=timezone,
                            given_first_name=SAMPLE.given_first_name, given_last_name=SAMPLE.given_last_name)
    # The steps are the same in every language; the subjects shown are in the one this person reads.
    written = plan.in_language(subscriber.locale)
    rows = [_row(written, renderer, subscriber, magnet, entry) for entry in timeline.entries]
    if as_json:
        emails = [{k: v for k, v in r.items() if k != "note"} for r in rows if r["step"]]
        click.echo(json.dumps(emails, indent=2, ensure_ascii=False))
        return
    _print_timeline(plan, rows, timeline, timezone)


@main.command()
@click.argument("funnel")
@click.argument("step_id", metavar="STEP")
@click.option("--data", help="Subscriber data as JSON: name, first_name, last_name, email, locale, "
                             "timezone, fields, magnet, segment, sent_at.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write STEP.html and STEP.txt (STEP-VARIANT.*) into this folder.")
@click.option("--variant", metavar="ID", help="Render this variant of the email (its experiment's "
                                               "versions: docs/experiments.md).")
@click.option("--locale", metavar="TAG", help=LOCALE_HELP)
@pass_project
def preview(obj: Context, funnel: str, step_id: str, data: str | None, out: Path | None,
            variant: str | None, locale: str | None) -> None:
    """Render one email (HTML and plain text) with sample subscriber data."""
    plan = _plan(obj, funnel)
    if variant is not None:
        _check_email_variant(plan, step_id, variant)
    sample = render_sample(plan, obj.project.templates_dir, step_id, parse_data(data), locale=locale,
                           variant=variant)
    email, subscriber, rendered = sample.email, sample.subscriber, sample.rendered
    if out is not None:
        name = f"{email.id}-{variant}" if variant else email.id
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.html").write_text(rendered.html, encoding="utf-8")
        (out / f"{name}.txt").write_text(rendered.text, encoding="utf-8")
        click.echo(f"wrote {out / (name + '.html')} and {out / (name + '.txt')}")
        return
    shown = f"Variant: {variant}\n" if variant else ""
    if sample.plan.language is not None:
        shown += f"Language: {sample.plan.language} (for locale {subscriber.locale})\n"
    click.echo(f"From: {plan.sender}\nTo: {formataddr((subscriber.name, subscriber.email))}\n"
               f"{shown}Subject: {rendered.subject}\n")
    click.echo(rendered.text)
    click.echo(f"(HTML part: {len(rendered.html)} characters; use --out DIR to write it)")


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema to this file instead of printing it.")
@click.option("--broadcast", is_flag=True, help="The schema of broadcast files (broadcasts/*.yaml).")
def schema(out: Path | None, broadcast: bool) -> None:
    """Print the JSON Schema of sequence files (or of broadcast files), for editors."""
    text = json.dumps(broadcast_schema() if broadcast else json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")


def _broadcast_summary(loaded: LoadedBroadcast) -> str:
    """'path: ok, broadcast 'x' (sale) to funnel 'f': segments a, b; stages c; at ...'."""
    plan = loaded.plan
    audience = loaded.model.audience
    who = [f"{key.replace('_', ' ')} {', '.join(value)}" for key, value in
           (("segments", audience.segments or []), ("stages", audience.stages or []),
            ("tags", audience.tags), ("without_tags", audience.without_tags)) if value]
    who += [f"{len(audience.answers)} answer condition{'s' if len(audience.answers) != 1 else ''}"
            ] if audience.answers else []
    who += [f"{key.replace('_', ' ')} {', '.join(value) or 'anything'}" for key, value in
            (("bought", audience.bought), ("not_bought", audience.not_bought)) if value is not None]
    if audience.engaged_within is not None:
        who.append(f"engaged within {format_delay(audience.engaged_within)}")
    who += [f"signed up {words} {moment:%Y-%m-%d %H:%M} UTC" for words, moment in
            (("from", audience.signed_up_after), ("before", audience.signed_up_before)) if moment]
    when = (f"{plan.at:%Y-%m-%d %H:%M} in each subscriber's time zone" if plan.local
            else f"{plan.at:%Y-%m-%d %H:%M} UTC")
    window = "inside the funnel's send window" if plan.use_window else "whatever the send window"
    ratio = f"; where 4:1 would break: {plan.when_ratio_breaks.value}" if plan.email.role is Role.SALE else ""
    return (f"{display_path(loaded.path)}: ok, broadcast '{plan.id}' ({plan.email.role.value}) to "
            f"funnel '{plan.funnel}': {'; '.join(who) or 'everyone'}; at {when}, {window}{ratio}")


def _against_database(obj: Context, plans: dict[str, Plan], complete: bool) -> Impact:
    """Compare `plans` with the project's database, opened as it is (validate migrates nothing).

    Its modules are imported here: the settings and the store (pydantic settings, SQLAlchemy)
    cost `funnel validate` 0.15 s of CPU to import, which only --against-db uses.
    """
    from engine.config import database_url
    from engine.store.db import not_created_yet, shown_url
    from engine.subscribers.impact import against_database

    url = database_url(obj.settings, obj.root)
    shown = shown_url(url)
    if not_created_yet(url):
        return against_database(None, shown, plans, complete)
    from engine.daemon.wiring import open_database  # the daemon's wiring is heavy; only --against-db needs it

    db_engine = open_database(obj.settings, obj.root, migrate=False)
    # The files as a daemon would load them now, to find the emails whose text changes.
    release = make_release(obj.project.snapshot(), plans.values()) if complete else None
    try:
        return against_database(db_engine, shown, plans, complete, release)
    finally:
        db_engine.dispose()


def _check_variant(plan: Plan, variant: str) -> None:
    """--variant names a variant of at least one email of the funnel."""
    known = sorted({v.id for email in plan.emails() for v in email.variants})
    if variant not in known:
        words = f"variants: {', '.join(known)}" if known else "it has no experiments"
        raise click.BadParameter(f"no email of funnel '{plan.funnel}' has a variant '{variant}'; "
                                 f"{did_you_mean(variant, known, words)}", param_hint="--variant")


def _check_email_variant(plan: Plan, step_id: str, variant: str) -> None:
    """preview --variant names a variant of the email `step_id`."""
    email = plan.email(step_id)
    if email is None:
        return  # render_sample says the step is unknown, with its 'did you mean'
    known = [v.id for v in email.variants]
    if variant not in known:
        words = f"its variants: {', '.join(known)}" if known else "it has no variants"
        raise click.BadParameter(f"email '{step_id}' has no variant '{variant}'; "
                                 f"{did_you_mean(variant, known, words)}", param_hint="--variant")


def _plan(obj: Context, funnel: str) -> Plan:
    try:
        return obj.project.plan(funnel)
    except EngineError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


def _parse_start(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not an ISO 8601 time; write for example "
                                 "2026-03-02T09:00 or 2026-03-02T09:00+01:00",
                                 param_hint="--start") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _offset(text: str, hint: str) -> timedelta:
    if text.strip() == "0":
        return timedelta(0)
    try:
        return parse_delay(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _parse_answer(plan: Plan, text: str) -> ScriptedAnswer:
    match = re.match(r"^([^=@]+)=([^=@]+)(?:@(.+))?$", text)
    if not match:
        raise click.BadParameter(f"'{text}' does not parse; write QUESTION=ANSWER, like "
                                 "experience=beginner or experience=beginner@0",
                                 param_hint="--answer")
    question, answer, offset = match.groups()
    questions = {q.id: [a for a, _ in q.answers] for q in plan.survey.questions} \
        if plan.survey else {}
    if question not in questions:
        raise click.BadParameter(f"no question '{question}'; questions: "
                                 f"{', '.join(questions) or 'none'}", param_hint="--answer")
    if answer not in questions[question]:
        raise click.BadParameter(f"question '{question}' has no answer '{answer}'; answers: "
                                 f"{', '.join(questions[question])}", param_hint="--answer")
    return ScriptedAnswer(question, answer, _offset(offset, "--answer") if offset else None)


def _parse_event(text: str, begin: datetime) -> Event:
    match = re.match(r"^([a-z_]+)(?::([^@]+))?@(.+)$", text)
    kinds = {t.value: t for t in EventType if t is not EventType.ANSWER}
    if not match or match.group(1) not in kinds:
        raise click.BadParameter(f"'{text}' does not parse; write TYPE[:NAME]@OFFSET with TYPE "
                                 f"one of {', '.join(kinds)}, like purchase@20d",
                                 param_hint="--event")
    kind, name, offset = match.groups()
    at = begin + _offset(offset, "--event")
    event_type = kinds[kind]
    if event_type is EventType.PURCHASE:
        return Event(event_type, at, product=name)
    return Event(event_type, at, name=name)


def _row(plan: Plan, renderer: Renderer, subscriber: Subscriber, magnet: str | None,
         entry: Entry) -> dict[str, Any]:
    action = entry.action
    row: dict[str, Any] = {"at": entry.at.isoformat(), "segment": entry.segment, "path": None,
                           "step": None, "variant": None, "role": None, "subject": None,
                           "note": None}
    if isinstance(action, Send):
        # In the subscriber's language, then the version this person gets.
        email = (plan.email(action.email.id) or action.email).as_variant(action.variant)
        context = template_context(plan, email, subscriber, PreviewLinks(), magnet=magnet,
                                   segment=entry.segment, sent_at=entry.at)
        row.update(path=email.path.value, step=email.id, variant=action.variant,
                   role=email.role.value, subject=renderer.subject(email.subject, context))
    elif isinstance(action, Skip):
        row["note"] = f"skipped {action.email.id}: {action.reason}"
    elif isinstance(action, EnterSegment):
        row["note"] = f"segment '{action.segment}': {action.reason}"
    elif isinstance(action, EnterPath):
        row["note"] = f"enters the {action.path.value} path: {action.reason}"
    elif isinstance(action, End):
        row["note"] = f"ends: {action.reason}"
    elif isinstance(action, Ignored):
        row["note"] = action.reason
    return row


def _print_timeline(plan: Plan, rows: list[dict[str, Any]], timeline: Timeline, tz: str) -> None:
    """Aligned plain text, one email a line, with what moved the subscriber in between."""
    click.echo(f"{plan.name} ({plan.funnel}); times in {tz}")
    emails = [r for r in rows if r["step"]]
    # A variant column only where an email of the timeline has variants.
    columns = ("segment", "path", "step", *(("variant",) if any(r["variant"] for r in emails) else ()),
               "role")
    widths = {k: max([len(k), *(len(str(r[k] or "")) for r in emails)]) for k in columns}
    header = "  ".join(["when".ljust(20), *(k.ljust(w) for k, w in widths.items()), "subject"])
    click.echo(header)
    for row in rows:
        when = datetime.fromisoformat(row["at"]).astimezone(zone(tz)).strftime("%a %Y-%m-%d %H:%M")
        if row["step"]:
            cells = [str(row[k] or "-").ljust(w) for k, w in widths.items()]
            click.echo("  ".join([when.ljust(20), *cells, row["subject"]]))
        else:
            click.echo(f"{when.ljust(20)}  -> {row['note']}")
    stage = timeline.final.stage.value if timeline.final else "?"
    click.echo(f"{len(timeline.sends())} emails; when the simulation ends the subscriber is at: "
               f"{stage}")
