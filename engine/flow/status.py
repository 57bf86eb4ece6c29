"""A subscriber's status on the list, and which statuses stop all mail to the address."""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    """Where a subscriber stands with the list as a whole (one per address, across funnels)."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"  # from every funnel; may sign up and confirm again
    BOUNCED = "bounced"  # a hard bounce: the address does not exist
    COMPLAINED = "complained"  # marked an email as spam


# Subscriber statuses whose address is never mailed again, whatever the email.
BLOCKED_STATUSES = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
