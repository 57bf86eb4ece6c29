"""`funnel doctor [--json] [--nameserver ADDRESS]`: SPF, DKIM, DMARC and MX of each sending domain,
and an https base_url, as a checklist with the fix for each failure; exit 1 on any failure."""

from __future__ import annotations

import json
import sys

import click

from engine.cli.main import Context, main, pass_project
from engine.config import dkim_keys
from engine.errors import EngineError
from engine.mail.dnslookup import DnsResolver
from engine.mail.doctor import Check, Status, diagnose

_MARK = {Status.OK: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL"}


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@click.option(
    "--nameserver",
    metavar="ADDRESS[:PORT]",
    help="Ask this DNS server instead of the system's (e.g. the domain's own, to see a "
    "record just published before caches expire).",
)
@pass_project
def doctor(obj: Context, as_json: bool, nameserver: str | None) -> None:
    """Check the sending domains' DNS (SPF, DKIM, DMARC, MX) and base_url; print what to fix."""
    try:
        settings = obj.settings
        signing = dkim_keys(settings, obj.root)
        published = dkim_keys(settings, obj.root, published=True)
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    loaded = obj.project.load_plans()
    domains = {f.plan.sender_parts[1].rpartition("@")[2] for f in loaded.funnels}
    domains |= {k.domain for k in signing}
    checks = diagnose(domains, signing, published, settings.base_url, DnsResolver(nameserver))
    failed = sum(c.status is Status.FAIL for c in checks)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        _print(checks)
        if loaded.errors:
            click.echo(
                f"({len(loaded.errors)} errors in the sequence files: their funnels' senders "
                "were not checked; see funnel validate)"
            )
    sys.exit(1 if failed else 0)


def _print(checks: list[Check]) -> None:
    domain = None
    for check in checks:
        if check.domain != domain:
            domain = check.domain
            click.echo(domain or "the daemon")
        click.echo(f"  {_MARK[check.status]}  {check.name:<24} {check.detail}")
        if check.fix and check.status is not Status.OK:
            click.echo(f"        fix: {check.fix}")
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    if failed:
        click.echo(
            f"{failed} failed, {warned} to look at: receivers may refuse this mail or file it as "
            "spam; publish the records above and run funnel doctor again"
        )
    else:
        click.echo(f"all checks passed{f', {warned} to look at' if warned else ''}")
