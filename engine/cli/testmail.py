"""`funnel send-test`: one email, rendered as `preview` renders it, sent through the configured transport.

It writes nothing to the database: no subscriber, no delivery, no event. Its links are
preview links (unsigned; following them records nothing), on the configured base_url.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from email.utils import parseaddr

import click

from engine.cli.main import Context, main, pass_project
from engine.cli.sample import LOCALE_HELP, load_plan, parse_data, render_sample
from engine.daemon.wiring import make_transport
from engine.errors import EngineError
from engine.mail.context import PreviewLinks
from engine.mail.message import build_message, check_address, new_message_id
from engine.mail.transport import Outcome, Outgoing, Result, Transport
from engine.sequences.plan import PathKind

SUBJECT_PREFIX = "[test] "


@main.command("send-test")
@click.argument("funnel")
@click.argument("step_id", metavar="STEP")
@click.option("--to", "to", required=True, metavar="ADDRESS", help="Where to send the test email.")
@click.option("--data", help="Subscriber data as JSON: name, email, locale, timezone, fields, magnet, "
                             "segment, sent_at.")
@click.option("--locale", metavar="TAG", help=LOCALE_HELP)
@pass_project
def send_test(obj: Context, funnel: str, step_id: str, to: str, data: str | None, locale: str | None) -> None:
    """Send one email of a funnel to ADDRESS, with sample data, through the configured transport."""
    try:
        check_address(to.strip(), "--to")
    except ValueError as error:
        raise click.BadParameter(f"{error}; write one address like ann@example.com",
                                 param_hint="--to") from None
    to = to.strip()
    plan = load_plan(obj, funnel)
    try:
        settings = obj.settings
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    links = PreviewLinks(settings.links_url.rstrip("/"))
    sample = render_sample(plan, obj.project.templates_dir, step_id, parse_data(data),
                           address=to, links=links, locale=locale)
    sender = parseaddr(plan.sender)[1]
    domain = settings.message_id_domain or sender.rpartition("@")[2] or "localhost"
    message_id = new_message_id(domain)
    unsubscribe = links.unsubscribe(sample.email)
    data_bytes = build_message(
        sender=plan.sender, to_name=sample.subscriber.name, to_address=to,
        subject=SUBJECT_PREFIX + sample.rendered.subject, html=sample.rendered.html,
        text=sample.rendered.text, message_id=message_id, date=datetime.now(UTC), reply_to=plan.reply_to,
        # As the daemon does: every email but the confirmation request carries the one-click
        # unsubscribe headers, which need an https:// base_url.
        list_unsubscribe=unsubscribe
        if sample.email.path is not PathKind.CONFIRM and unsubscribe.startswith("https://") else None)
    try:
        transport = make_transport(settings, obj.root)
    except (EngineError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    result = asyncio.run(_send(transport, Outgoing(message_id, sender, to, data_bytes)))
    # The outbox's "reply" is where it wrote the file; a server's is its code and words.
    reply = result.reply if settings.transport == "outbox" else f"{result.code or ''} {result.reply}".strip()
    if result.outcome is not Outcome.SENT:
        click.echo(f"not sent: '{sample.email.id}' to {to}: {reply or result.outcome.value}", err=True)
        sys.exit(1)
    click.echo(f"sent '{sample.email.id}' of {plan.funnel} to {to} through {settings.transport}: {reply}")


async def _send(transport: Transport, message: Outgoing) -> Result:
    try:
        return await transport.send(message)
    finally:
        await transport.close()
