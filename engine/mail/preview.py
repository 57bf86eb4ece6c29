"""An email as a sample subscriber would read it: `funnel preview` and `send-test`, and the dashboard's
email page. The same template context and renderer as a live send, with links that count nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.mail.context import Links, PreviewLinks, Subscriber, template_context
from engine.mail.render import Rendered, Renderer
from engine.sequences.plan import EmailStep, Plan


@dataclass(frozen=True)
class Preview:
    """An email rendered for one subscriber, in the funnel's language they read (`plan`)."""

    email: EmailStep  # as that language and variant have it
    subscriber: Subscriber
    rendered: Rendered
    plan: Plan


def preview(plan: Plan, renderer: Renderer, email_id: str, subscriber: Subscriber, *,
            variant: str | None = None, links: Links | None = None, magnet: str | None = None,
            segment: str | None = None, sent_at: datetime | None = None) -> Preview | None:
    """Email `email_id` of `plan` rendered for `subscriber`, in their language, as `variant` if given;
    None when the funnel has no such email."""
    read = plan.as_read(email_id, subscriber.locale, variant)
    if read is None:
        return None
    plan, email = read
    context = template_context(plan, email, subscriber, links or PreviewLinks(), magnet=magnet,
                               segment=segment, sent_at=sent_at)
    return Preview(email, subscriber, renderer.render(email, context), plan)
