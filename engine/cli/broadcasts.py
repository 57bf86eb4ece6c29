"""`funnel broadcast list|audience|preview|schedule|cancel|stats`: one-off emails, before and after they go.

A broadcast file (broadcasts/*.yaml) is a draft until `schedule` puts it on the calendar;
a running daemon then takes its audience at its first moment (docs/broadcasts.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from email.utils import formataddr
from typing import Any, TypeVar

import click

from engine.cli.broadcasts_text import audience_lines, list_lines, stats_lines
from engine.cli.main import Context, main, pass_project
from engine.config import database_url
from engine.errors import EngineError
from engine.logs import log
from engine.mail.context import SAMPLE, PreviewLinks, Subscriber, template_context
from engine.mail.render import Renderer
from engine.project.release import make_release
from engine.scheduler.clock import Clock, SystemClock
from engine.sequences.plan import BroadcastPlan, Plan
from engine.stats import broadcasts as numbers
from engine.store import audience as audience_sql
from engine.store import broadcasts as calendar
from engine.store import queries
from engine.store.db import DbConnection, DbEngine, not_created_yet

T = TypeVar("T")
# What time these commands take it to be; tests put a FrozenClock here.
clock: Clock = SystemClock()


@main.group("broadcast")
def broadcast_group() -> None:
    """One-off emails (broadcasts/*.yaml): list, audience, preview, schedule, cancel, stats."""


@broadcast_group.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print the list as JSON (what GET /api/broadcasts returns).")
@pass_project
def list_command(obj: Context, as_json: bool) -> None:
    """Every broadcast file with its funnel, role, time, state, recipients and what was sent so far."""
    plans = _plans(obj)
    rows = obj.read(lambda db_engine: _read(db_engine, lambda conn: numbers.listing(conn, plans)))
    _show(rows, list_lines, as_json)


@broadcast_group.command("audience")
@click.argument("broadcast_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the audience as JSON.")
@pass_project
def audience_command(obj: Context, broadcast_id: str, as_json: bool) -> None:
    """Who it would go to now, who is left out and why, when it goes and where its people are."""
    plan, broadcast = _find(_plans(obj), broadcast_id)
    found = obj.read(lambda db_engine: _read(
        db_engine, lambda conn: numbers.audience(conn, plan, broadcast, obj.clock(clock).now())))
    _show(found, audience_lines, as_json)


@broadcast_group.command("stats")
@click.argument("broadcast_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True,
              help="Print the numbers as JSON (what GET /api/broadcasts/ID returns).")
@pass_project
def stats_command(obj: Context, broadcast_id: str, as_json: bool) -> None:
    """What it did: recipients, skips by reason, sent, delivered, opens, clicks, unsubscribes, complaints,
    and the purchases attributed to it."""
    _, broadcast = _find(_plans(obj), broadcast_id)
    found = obj.read(lambda db_engine: _read(db_engine, lambda conn: numbers.numbers(conn, broadcast)))
    _show(found, stats_lines, as_json)


@broadcast_group.command("preview")
@click.argument("broadcast_id", metavar="ID")
@click.option("--to", "address", help="Render it for this address: a subscriber in the database, or "
                                      "the sample person with this address.")
@click.option("--html", "part", flag_value="html", help="Print only the HTML part.")
@click.option("--text", "part", flag_value="text", help="Print only the plain-text part.")
@pass_project
def preview_command(obj: Context, broadcast_id: str, address: str | None, part: str | None) -> None:
    """Render it for a sample recipient: one of its audience when the database has one."""
    plan, broadcast = _find(_plans(obj), broadcast_id)
    url = database_url(obj.settings, obj.root)
    found: tuple[Subscriber, str | None, str] | None = None
    if not not_created_yet(url):
        found = obj.read(lambda db_engine: _read(
            db_engine, lambda conn: _recipient(conn, broadcast, address, obj.clock(clock))))
    subscriber, segment, who = found or (
        Subscriber(email=address or SAMPLE.email, name=SAMPLE.name, given_first_name=SAMPLE.given_first_name,
                   given_last_name=SAMPLE.given_last_name), None, "the sample person")
    email = broadcast.email
    context = template_context(plan, email, subscriber, PreviewLinks(), segment=segment,
                               sent_at=broadcast.due_at(subscriber.timezone))
    try:
        rendered = Renderer(obj.project.templates_dir).render(email, context)
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"rendered for {who}", err=True)
    if part is not None:
        click.echo(rendered.html if part == "html" else rendered.text)
        return
    click.echo(f"From: {plan.sender}\nTo: {formataddr((subscriber.name, subscriber.email))}\n"
               f"Subject: {rendered.subject}\n")
    click.echo(rendered.text)
    click.echo(f"(HTML part: {len(rendered.html)} characters; print it with --html)")


@broadcast_group.command("schedule")
@click.argument("broadcast_id", metavar="ID")
@click.option("--by", default="cli", show_default=True, help="Who scheduled it, as the calendar records it.")
@pass_project
def schedule_command(obj: Context, broadcast_id: str, by: str) -> None:
    """Put it on the calendar: a running daemon sends it at its time. The whole project must be valid."""
    snapshot = obj.project.snapshot()
    result = obj.project.check(snapshot=snapshot)
    if result.errors:
        for error in sorted(set(result.errors)):
            click.echo(str(error), err=True)
        click.echo("the project has errors, and a broken project cannot schedule: fix them "
                   "(funnel validate) and run this again", err=True)
        sys.exit(1)
    plans = {loaded.plan.funnel: loaded.plan for loaded in result.funnels}
    plan, broadcast = _find(plans, broadcast_id)
    db_engine = obj.database()
    now = obj.clock(clock).now()
    if _read(db_engine, lambda conn: calendar.row(conn, broadcast.id)) is None:
        try:  # before counting its audience, which takes a while at a million
            calendar.refuse_if_late(broadcast, now)
        except calendar.TooLate as error:
            click.echo(str(error), err=True)
            sys.exit(1)
    found = _read(db_engine, lambda conn: numbers.audience(conn, plan, broadcast, now))
    release = make_release(snapshot, plans.values()).id
    try:
        with db_engine.begin() as conn:
            scheduled = calendar.schedule(conn, broadcast, release, now, by)
            row = calendar.row(conn, broadcast.id)
    except calendar.CalendarError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    for line in audience_lines(found):
        click.echo(line)
    assert row is not None
    if not scheduled:
        since = f"{row['scheduled_at']:%Y-%m-%d %H:%M} UTC, by {row['scheduled_by'] or '-'}"
        click.echo(f"broadcast '{broadcast.id}' is already scheduled (since {since}); nothing to do")
        return
    log("broadcast_scheduled", broadcast=broadcast.id, funnel=broadcast.funnel, by=by, release=release)
    click.echo(f"scheduled '{broadcast.id}' (release {release}): it goes at {broadcast.when}; "
               f"a running daemon takes its audience from {broadcast.first_due():%Y-%m-%d %H:%M} UTC. "
               f"Cancel with: funnel broadcast cancel {broadcast.id}")


@broadcast_group.command("cancel")
@click.argument("broadcast_id", metavar="ID")
@click.option("--by", default="cli", show_default=True, help="Who cancelled it, as the calendar records it.")
@pass_project
def cancel_command(obj: Context, broadcast_id: str, by: str) -> None:
    """Cancel a scheduled broadcast: nobody else gets it; what has gone, has gone."""
    db_engine = obj.database()
    now = obj.clock(clock).now()
    try:
        with db_engine.begin() as conn:
            row = calendar.row(conn, broadcast_id)
            if row is not None and row["state"] == calendar.CANCELLED:
                click.echo(f"broadcast '{broadcast_id}' was already cancelled "
                           f"({row['cancelled_at']:%Y-%m-%d %H:%M} UTC); nothing to do")
                return
            stopped = calendar.cancel(conn, broadcast_id, now, by)
    except calendar.CalendarError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    log("broadcast_cancelled", broadcast=broadcast_id, by=by, recipients=stopped.recipients,
        deliveries=stopped.deliveries)
    click.echo(f"cancelled '{broadcast_id}': {stopped.recipients:,} recipient(s) who had not had it will not "
               f"get it; {stopped.deliveries:,} queued email(s) stopped; what was sent stays sent")


def _plans(obj: Context) -> dict[str, Plan]:
    """The project's funnels with their broadcasts (without the templates' sample renders)."""
    return obj.plans("it is not listed", obj.project.load_plans().broadcast_files)


def _find(plans: Mapping[str, Plan], broadcast_id: str) -> tuple[Plan, BroadcastPlan]:
    try:
        return numbers.find(plans, broadcast_id)
    except numbers.UnknownBroadcastError as error:
        click.echo(str(error), err=True)
        sys.exit(1)


def _read(db_engine: DbEngine, reader: Callable[[DbConnection], T]) -> T:
    """`reader(conn)` in one read transaction."""
    with db_engine.connect() as conn:
        return reader(conn)


def _recipient(
    conn: DbConnection, broadcast: BroadcastPlan, address: str | None, at: Clock
) -> tuple[Subscriber, str | None, str] | None:
    """A subscriber to render it for: the one with `address`, else the first of its audience; None: nobody."""
    if address is not None:
        row = queries.find_subscriber(conn, address)
        who = f"{address}, a subscriber"
    else:
        first = audience_sql.recipients_after(conn, broadcast.audience, broadcast.funnel, at.now(),
                                              broadcast.first_due(), 0, 1)
        row = queries.subscribers_by_id(conn, [first[0].subscriber_id]).get(first[0].subscriber_id) \
            if first else None
        who = f"{row['email']}, the first of its audience" if row is not None else ""
    if row is None:
        return None
    enrollments = queries.enrollments_of(conn, row["id"])
    enrolled = next((e for e in enrollments if e["funnel"] == broadcast.funnel), None)
    subscriber = Subscriber(email=row["email"], name=row["name"], locale=row["locale"],
                            timezone=row["timezone"], fields=row["fields"] or {},
                            given_first_name=row["first_name"], given_last_name=row["last_name"])
    return subscriber, enrolled["segment"] if enrolled is not None else None, who


def _show(found: Any, lines: Callable[[Any], Iterable[str]], as_json: bool) -> None:
    """The numbers as JSON, or as the lines a terminal shows."""
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for line in lines(found):
        click.echo(line)
