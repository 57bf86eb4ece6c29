"""Compose one live email: render its template for the subscriber, track its links, build the message.

The sender calls `compose` shortly before sending, a round of messages at a time
(engine/scheduler/sending.py); what it gets back is ready for a transport. A message
that cannot be written (a template that fails for this subscriber, an address that
cannot go in a header) raises `ComposeError`, whose text says what the marketer can
write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError, UndefinedError

from engine.errors import EngineError
from engine.mail.context import Links, Subscriber, skeleton_key, template_context
from engine.mail.message import build_message
from engine.mail.render import Renderer
from engine.mail.tracking import track_parts
from engine.mail.transport import Outgoing
from engine.sequences.plan import EmailStep, PathKind, Plan


@dataclass(frozen=True)
class Tracking:
    """What a live email counts: clicks through the daemon at `base_url`, opens with a pixel."""

    base_url: str
    clicks: bool = True
    opens: bool = True


class ComposeError(EngineError):
    """This one message cannot be written; the text says why and what the marketer can write instead."""


class TemplateFileError(ComposeError):
    """The template files are wrong (missing, bad syntax, an unknown name), not this subscriber's data.

    Mending the files mends the email: the dispatcher holds it rather than failing it.
    """

    def __init__(self, message: str, template: str) -> None:
        super().__init__(message)
        self.template = template


# StrictUndefined's text for a name the context lacks altogether ("'greting' is undefined"),
# as opposed to an attribute or key of a value ("'dict object' has no attribute 'city'").
_UNKNOWN_NAME = re.compile(r"^'[^']+' is undefined$")


def compose(
    plan: Plan,
    email: EmailStep,
    subscriber: Subscriber,
    links: Links,
    renderer: Renderer,
    *,
    message_id: str,
    date: datetime,
    tracking: Tracking,
    magnet: str | None = None,
    segment: str | None = None,
) -> Outgoing:
    """The message `email` of `plan` as it goes to `subscriber`; ComposeError when it cannot be written."""
    if email.path is PathKind.CONFIRM:
        # Until they confirm, the name and fields are what a stranger may have typed into
        # a form: the confirmation carries none of it (a signup form is no way to mail
        # text to someone), neither in the To header nor in the template.
        subscriber = Subscriber(
            email=subscriber.email, locale=subscriber.locale, timezone=subscriber.timezone
        )
    try:
        uses = renderer.names(email.template, email.subject)
        dated = renderer.dated(email.template, email.subject)
        context = template_context(
            plan,
            email,
            subscriber,
            links,
            magnet=magnet,
            segment=segment,
            uses=uses,
            sent_at=date,
            dated=dated,
        )
        # The locale writes numbers and prices (numbers.py): emails of one step share a text
        # skeleton only within one locale; a dated one, within one date (locale, zone, minute).
        key = skeleton_key(plan, email, context, magnet=magnet, segment=segment, dated=dated)
        rendered = renderer.render(email, context, key=key)
        html, text = rendered.html, rendered.text
        html_shape, text_shape = rendered.html_shape, rendered.text_shape
        if email.path is not PathKind.CONFIRM:  # nothing is counted before consent
            tracked = track_parts(
                html, text, links, tracking.base_url, clicks=tracking.clicks, opens=tracking.opens
            )
            # A part whose links tracking rewrote is no longer its skeleton filled in:
            # encoded as it is. The pixel, put in a fixed piece, keeps the HTML's shape.
            if tracked.html is not html:
                html_shape = None
            if tracked.text is not text:
                text_shape = None
            html, text = tracked.html, tracked.text
            if tracked.pixel:
                if html_shape is not None:
                    html_shape = html_shape[0].inserted(html_shape[1], tracked.at, tracked.pixel)
                html = html[:tracked.at] + tracked.pixel + html[tracked.at:]
        data = build_message(
            sender=plan.sender,
            to_name=subscriber.name,
            to_address=subscriber.email,
            subject=rendered.subject,
            html=html,
            text=text,
            message_id=message_id,
            date=date,
            reply_to=plan.reply_to,
            # Every email to a subscriber carries it; only the double opt-in request does not
            # (the person is not on the list until they confirm).
            list_unsubscribe=None if email.path is PathKind.CONFIRM else links.unsubscribe(email),
            html_shape=html_shape,
            text_shape=text_shape,
        )
    except (TemplateError, ValueError) as error:
        if is_file_problem(error):
            raise TemplateFileError(render_problem(email.template, error), email.template) from error
        raise ComposeError(render_problem(email.template, error)) from error
    return Outgoing(message_id, plan.sender_parts[1], subscriber.email, data, crlf=True)


def is_file_problem(error: Exception) -> bool:
    """True when the files are at fault: a template not found, bad syntax, a name no context has.

    A missing attribute or key (a `subscriber.fields.x` this subscriber lacks) is the
    subscriber's data: those fail as before.
    """
    if isinstance(error, TemplateNotFound | TemplateSyntaxError):
        return True
    return isinstance(error, UndefinedError) and bool(_UNKNOWN_NAME.match(error.message or ""))


def render_problem(template: str, error: Exception) -> str:
    """What went wrong for this one subscriber, and what the marketer can write instead."""
    if isinstance(error, UndefinedError) and is_file_problem(error):
        return (f"{template}: {error.message}; no email has that name: fix its spelling in the "
                "template (a funnel's vars are written vars.NAME)")
    if isinstance(error, TemplateNotFound):
        return (f"{template}: template '{error.name}' not found; restore the file or change "
                "the template: the sequence file names")
    if isinstance(error, UndefinedError):
        # validate checks every name a template uses; only a custom field can be missing
        # for one subscriber and not for the sample ones.
        return (
            f"{template}: {error.message}; this subscriber lacks a value the template uses: "
            "write {{ subscriber.fields.NAME | default('') }} or give every subscriber the field"
        )
    if isinstance(error, TemplateError):
        return f"{template}: {error}"
    return str(error)  # the address or the sender cannot be written into a message
