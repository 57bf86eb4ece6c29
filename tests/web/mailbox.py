"""Reading the messages a test daemon sent: parts and links, as a mail client would."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from engine.mail.transport import Outgoing

_HREF = re.compile(r'(?:href|src)="([^"]+)"')


def parse(message: Outgoing) -> EmailMessage:
    """The message as a mail client reads it."""
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def html_of(message: Outgoing) -> str:
    """The HTML part's text."""
    part = parse(message).get_body(("html",))
    assert part is not None
    return str(part.get_content())


def links(message: Outgoing, base_url: str = "https://funnel.example") -> list[str]:
    """Paths of the daemon's own links (hrefs and image sources) in the HTML part, in order."""
    found = [u.replace("&amp;", "&") for u in _HREF.findall(html_of(message))]
    return [u[len(base_url):] for u in found if u.startswith(base_url + "/")]


def link(message: Outgoing, prefix: str) -> str:
    """The first of the daemon's links whose path starts with `prefix` (like '/confirm/')."""
    matching = [p for p in links(message) if p.startswith(prefix)]
    assert matching, f"no {prefix} link in {links(message)}"
    return matching[0]
