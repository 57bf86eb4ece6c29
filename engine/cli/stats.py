"""`funnel stats [FUNNEL] [--since DATE] [--json] [--csv [--products]]`: the numbers (docs/stats.md)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime

import click

from engine.cli.main import Context, main, pass_project
from engine.cli.stats_text import csv_rows, product_csv_rows, report_lines
from engine.errors import UnknownFunnelError
from engine.scheduler.clock import Clock, SystemClock
from engine.stats.broadcasts import read_report
from engine.stats.report import parse_since

# What time the command takes it to be; tests put a FrozenClock here.
clock: Clock = SystemClock()


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@click.argument("funnel", required=False)
@click.option("--since", callback=_since, metavar="DATE",
              help="Only signups from then on (stages) and the mail decided from then on (emails): "
                   "2026-03-01 (midnight UTC) or an ISO time like 2026-03-01T09:00+01:00.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (what GET /api/stats returns).")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print the emails' numbers as CSV, one row per funnel and step.")
@click.option("--products", is_flag=True,
              help="With --csv: the products' numbers instead, one row per funnel and product.")
@pass_project
def stats(obj: Context, funnel: str | None, since: datetime | None, as_json: bool, as_csv: bool,
          products: bool) -> None:
    """Stages with conversions, answers, segments, sources, revenue, products and every email's numbers."""
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    if products and not as_csv:
        raise click.UsageError("--products picks the rows of --csv; write --csv --products")
    # Without the templates' sample renders: the full check took three times as long as the
    # report at a million.
    plans = obj.plans("its funnel shows only what the database holds")
    try:
        report = obj.read(
            lambda db_engine: read_report(db_engine, plans, funnel, since, now=obj.clock(clock).now()))
    except UnknownFunnelError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerows(product_csv_rows(report) if products else csv_rows(report))
    else:
        for line in report_lines(report):
            click.echo(line)
