"""`funnel subscribers import|export|show|forget`: the list, for marketers and operators."""

from __future__ import annotations

import csv
import json
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO

import click

from engine.cli.main import Context, main, pass_project
from engine.cli.profile_text import profile_json, profile_lines
from engine.errors import UnknownFunnelError, display_path
from engine.scheduler.clock import Clock, SystemClock
from engine.store import reports
from engine.store.db import DbEngine
from engine.subscribers.exporting import cells, field_names, header, rows
from engine.subscribers.profile import Profile, forget, load_profile, rows_to_forget, suppression

# What time these commands take it to be; tests put a FrozenClock here.
clock: Clock = SystemClock()


@main.group()
def subscribers() -> None:
    """Import, export, look up and erase subscribers."""


def _database(obj: Context) -> DbEngine:
    return obj.database()


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--funnel", required=True, help="The funnel to put everyone in.")
@click.option("--double-opt-in", is_flag=True,
              help="Send them the confirmation email instead of counting them as confirmed.")
@pass_project
def import_command(obj: Context, file: Path, funnel: str, double_opt_in: bool) -> None:
    """Add the people of a CSV file (header row; an 'email' column) to a funnel; exit 1 on bad rows."""
    # Imported here, not above: rich, the address checker and the sample renderer (load_plan's
    # module) take 0.1 s to import, which the other subscribers commands (show, above all) would
    # wait for without using them.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.cli.sample import load_plan
    from engine.subscribers.csvleads import CsvLeads, ImportFileError
    from engine.subscribers.importing import Importer

    plan = load_plan(obj, funnel)
    try:
        source = CsvLeads(file, plan, display_path(file))
    except ImportFileError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    if source.columns.ignored:
        names = ", ".join(source.columns.ignored)
        click.echo(f"not imported: the columns {names} (written by export); to keep one as a custom field, "
                   f"name it field.<name>", err=True)
    if double_opt_in and not plan.double_opt_in:
        click.echo(f"funnel '{plan.funnel}' sends no confirmation email; --double-opt-in changes nothing",
                   err=True)
    db_engine = _database(obj)
    # The bar shows only on a terminal; elsewhere (a pipe, a file, CI) the output is plain lines.
    # Problems go through the bar's console so that they print above the bar, not across it.
    console = Console(highlight=False)
    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("import", total=max(source.lines - 1, 0))
        importer = Importer(db_engine, plan, source, confirmed=not double_opt_in,
                            clock=obj.clock(clock).now,
                            on_problem=console.out,
                            on_progress=lambda line: progress.update(task, completed=line - 1))
        counts = importer.run()
    click.echo(counts.summary())
    if counts.bad:
        sys.exit(1)


@subscribers.command()
@click.option("--funnel", help="Only the subscribers of this funnel, with their stage, segment and step.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
@pass_project
def export(obj: Context, funnel: str | None, out: Path | None) -> None:
    """Write subscribers as CSV (the columns `subscribers import` reads back)."""
    db_engine = _database(obj)
    if funnel is not None:
        with db_engine.connect() as conn:
            known = set(reports.funnel_names(conn))
        known |= {f.plan.funnel for f in obj.project.load_plans().funnels}
        if funnel not in known:
            click.echo(str(UnknownFunnelError(funnel, sorted(known))), err=True)
            sys.exit(1)
    fields = field_names(db_engine, funnel)
    count = 0
    with ExitStack() as stack:
        handle: IO[str] = sys.stdout
        if out is not None:
            handle = stack.enter_context(out.open("w", encoding="utf-8", newline=""))
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header(fields, funnel))
        for row in rows(db_engine, funnel):
            writer.writerow(cells(row, fields, funnel))
            count += 1
    if out is not None:
        click.echo(f"wrote {count:,} subscriber{'s' if count != 1 else ''} to {display_path(out)}")


@subscribers.command()
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@pass_project
def show(obj: Context, email: str, as_json: bool) -> None:
    """Everything stored about one subscriber, and what each funnel sends them next and why it waits."""
    result = obj.project.load_plans()
    plans = {loaded.plan.funnel: loaded.plan for loaded in result.funnels}
    broken = set(result.ids) - set(plans)

    def look_up(db_engine: DbEngine) -> tuple[datetime, Profile | None, tuple[str, datetime] | None]:
        now = obj.clock(clock).now()
        profile = load_profile(db_engine, email, plans, broken, now)
        return now, profile, suppression(db_engine, email) if profile is None else None

    now, profile, blocked = obj.read(look_up)
    if profile is None:
        why = "; check the spelling (case does not matter)"
        if blocked:
            what = "forgotten" if blocked[0] == "forgotten" else f"suppressed ({blocked[0]})"
            why = f"; it was {what} on {blocked[1]:%Y-%m-%d}, and only a hash of it is kept"
        click.echo(f"no subscriber with the address '{email}'{why}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(profile_json(profile), indent=2, ensure_ascii=False))
    else:
        for line in profile_lines(profile, now):
            click.echo(line)


@subscribers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_project
def forget_command(obj: Context, email: str, yes: bool) -> None:
    """Erase a subscriber and everything about them; keep only a hash so they are never mailed again."""
    db_engine = _database(obj)
    counts = rows_to_forget(db_engine, email)
    if counts is None:
        blocked = suppression(db_engine, email)
        if blocked and blocked[0] == "forgotten":
            click.echo(f"'{email}' was already forgotten on {blocked[1]:%Y-%m-%d}; only a hash of it is kept")
            return
        click.echo(f"no subscriber with the address '{email}'; nothing to forget "
                   "(check the spelling; case does not matter)", err=True)
        sys.exit(1)
    what = _rows_text(counts)
    if not yes:
        click.confirm(f"Erase {email} ({what})? This cannot be undone, and the address can never be "
                      "imported or sign up again", abort=True)
    done = forget(db_engine, email, obj.clock(clock).now())
    if done is None:  # erased by someone else between the question and the answer
        click.echo(f"'{email}' is gone already")
        return
    click.echo(f"forgot {done.address}: erased {_rows_text(done.deleted)}; kept only a hash of the address, "
               "so that it is never mailed or imported again")


_ROWS = {"delivery": ("delivery", "deliveries"), "consent": ("consent record", "consent records"),
         "milestone": ("funnel stage record", "funnel stage records")}


def _rows_text(counts: dict[str, int]) -> str:
    """'1 subscriber, 2 consent records, 3 events' (tables with no rows left out)."""
    parts = []
    for table in ("subscriber", "consent", "tag", "enrollment", "milestone", "event", "delivery"):
        one, many = _ROWS.get(table, (table, table + "s"))
        if counts.get(table):
            parts.append(f"{counts[table]:,} {one if counts[table] == 1 else many}")
    return ", ".join(parts)
