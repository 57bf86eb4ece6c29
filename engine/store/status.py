"""The statuses a delivery row goes through, and the groups of them the queries count."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """What became of one email decided for a subscriber (the delivery table's `status`).

    queued|sending|deferred are pending; the rest are final.
    """

    QUEUED = "queued"  # decided, waiting for its turn (or its send window)
    DEFERRED = "deferred"  # a 4xx: tried again later, until the retry lifetime runs out
    SENDING = "sending"  # claimed by a daemon until its lease ends
    SENT = "sent"  # 2xx after the data: the server took responsibility
    BOUNCED = "bounced"  # 5xx at RCPT, or a hard bounce reported after delivery
    REJECTED = "rejected"  # 5xx at MAIL FROM or after the data: this message failed
    UNKNOWN = "unknown"  # the connection broke after the data went out: it may have arrived
    FAILED = "failed"  # not sendable, or retried for the whole retry lifetime
    SUPPRESSED = "suppressed"  # stopped before it went: unsubscribed, blocked or suppressed
    CANCELLED = "cancelled"  # its broadcast was cancelled before it went


# Not final yet: waiting, being sent, or waiting to retry after a 4xx.
PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED, DeliveryStatus.SENDING)
# Mail that counts against the frequency cap: everything decided except what never left.
NOT_SENT = (DeliveryStatus.FAILED, DeliveryStatus.BOUNCED, DeliveryStatus.REJECTED, DeliveryStatus.SUPPRESSED,
            DeliveryStatus.CANCELLED)
# Left the engine and got an answer from the receiving server: what rates are taken over.
LEFT = (DeliveryStatus.SENT, DeliveryStatus.BOUNCED, DeliveryStatus.UNKNOWN)
