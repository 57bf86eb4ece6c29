"""What email providers report back about sent mail, in one closed vocabulary.

Each provider's webhook payload is normalised by its own module (`ses`, `postmark`)
into `Feedback` items before anything else sees it: a spam complaint, a hard bounce,
or something the engine does not act on (`ignored`, with the reason in `detail`).
Soft and undetermined bounces are ignored on purpose: the SMTP conversation already
retries them, and suppressing an address for a full mailbox would lose a reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from enum import StrEnum
from typing import Any


class FeedbackKind(StrEnum):
    """The closed vocabulary of provider feedback."""

    COMPLAINT = "complaint"  # marked as spam: suppress the address
    BOUNCE = "bounce"  # a hard (permanent) bounce after the provider accepted the message
    IGNORED = "ignored"  # deliveries, opens, soft bounces...: nothing to do; `detail` says why


@dataclass(frozen=True)
class Feedback:
    """One provider report about one recipient."""

    kind: FeedbackKind
    email: str  # the recipient; empty for a report about no one (an ignored record may have none)
    message_id: str | None  # our Message-ID of the email it is about, without angle brackets
    at: datetime | None  # when the provider says it happened
    provider: str  # "ses", "postmark"
    provider_id: str  # the provider's id of the report: a redelivery carries the same one
    detail: str = ""  # the bounce's diagnostic, the complaint's feedback type, or why it is ignored


def bare_address(value: Any) -> str:
    """The address in a recipient field (`jane@example.com` or `Jane <jane@example.com>`); '' if none."""
    if not isinstance(value, str):
        return ""
    address = parseaddr(value)[1] if "<" in value else value.strip()
    return address if "@" in address else ""


def bare_message_id(value: Any) -> str | None:
    """A Message-ID as the engine stores it: no angle brackets or spaces; None when empty or not text."""
    if not isinstance(value, str):
        return None
    bare = value.strip()
    if bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1].strip()
    return bare or None


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time from a payload, None when absent or unreadable (it is only informative).

    Providers send 7 fraction digits (.NET) or a trailing Z; Python 3.11 reads both.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def text(value: Any, limit: int = 500) -> str:
    """A payload value as one line of at most `limit` characters (empty for anything not text)."""
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]
