"""`funnel experiments [FUNNEL]`: every experiment's variants with their numbers, and the rule's decision."""

from __future__ import annotations

import json

import click

from engine.cli.main import Context, main, pass_project
from engine.errors import UnknownFunnelError
from engine.stats.experiments import ExperimentReport, experiment_reports, report_lines
from engine.store.db import DbEngine


@main.command("experiments")
@click.argument("funnel", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@pass_project
def experiments(obj: Context, funnel: str | None, as_json: bool) -> None:
    """Each email with variants: sends, clicks or buyers, rate with its 95% interval, chance to be best,
    and what the rule decides now (a broadcast's winner once kept)."""
    plans = obj.plans("its experiments are not shown")
    if funnel is not None and funnel not in plans:
        raise click.ClickException(str(UnknownFunnelError(funnel, list(plans))))

    def read(db_engine: DbEngine) -> list[ExperimentReport]:
        with db_engine.connect() as conn:
            return experiment_reports(conn, plans, [funnel] if funnel else None)

    reports = obj.read(read)
    if as_json:
        click.echo(json.dumps([r.as_json() for r in reports], indent=2))
        return
    if not reports:
        click.echo("no email has variants (docs/experiments.md says how to give one some)")
        return
    for line in report_lines(reports):
        click.echo(line)
