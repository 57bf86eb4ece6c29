"""What became of one claimed delivery: a typed record, turned into the row's new values in one place.

A claimed delivery ends a tick in one of three ways: it was attempted (the transport's
result decides the status), held back without an attempt (the warm-up or its domain's
rate: it waits, and hands its share of the global rate back), or not sent for a reason
of its own (an unsubscribe, a missing step, the send window). Each is a `DeliveryUpdate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from engine.mail.transport import Result
from engine.store.status import DeliveryStatus

# A claimed delivery as the store hands it over: the delivery's columns, the subscriber's
# (email, name, locale, timezone, fields, subscriber_status), the enrollment's magnet, and
# `suppressed` (the address is on the suppression list).
Claimed = dict[str, Any]

# Why a delivery was held back without an attempt.
Hold = Literal["warmup", "throttle"]


@dataclass(frozen=True)
class DeliveryUpdate:
    """A delivery's new status and columns, and what the outcome commit and the tick need besides."""

    delivery_id: int
    status: DeliveryStatus
    next_attempt_at: datetime | None
    attempts: int
    last_code: int | None
    last_reply: str
    sent_at: datetime | None
    first_attempt_at: datetime | None
    updated_at: datetime
    # Not columns: what the write needs to suppress a bounced address.
    address: str
    subscriber_id: int
    held: Hold | None = None  # not attempted: the warm-up or the domain's rate held it back
    domain: str | None = None  # the recipient domain a hold or a pause is about
    domain_paused_until: datetime | None = None  # a 421: the domain refuses mail until then
    release: str | None = None  # the release the message was rendered from, once composed

    def columns(self) -> dict[str, Any]:
        """The delivery row's new values, keyed as `queries.record_outcomes` takes them."""
        columns = {
            "_id": self.delivery_id,
            "status": self.status,
            "next_attempt_at": self.next_attempt_at,
            "attempts": self.attempts,
            "last_code": self.last_code,
            "last_reply": self.last_reply,
            "sent_at": self.sent_at,
            "first_attempt_at": self.first_attempt_at,
            "updated_at": self.updated_at,
        }
        if self.release is not None:  # only a composed message names its release
            columns["release"] = self.release
        return columns

    def holding(self, why: Hold, domain: str | None = None) -> DeliveryUpdate:
        """This update, as one that holds the delivery back (no attempt) for `why`."""
        return dataclasses.replace(self, held=why, domain=domain)


def final(
    row: Claimed,
    status: DeliveryStatus,
    now: datetime,
    result: Result | None = None,
    attempts: int | None = None,
    reply: str | None = None,
    sent_at: datetime | None = None,
    release: str | None = None,
) -> DeliveryUpdate:
    """The update that ends `row` with `status` (sent, failed, bounced, suppressed...)."""
    return _update(row, status, now, None, result, attempts, reply, sent_at, release)


def later(
    row: Claimed,
    at: datetime,
    now: datetime,
    reply: str,
    result: Result | None = None,
    attempts: int | None = None,
    release: str | None = None,
) -> DeliveryUpdate:
    """The update that defers `row` until `at`, saying why in `reply`."""
    return _update(row, DeliveryStatus.DEFERRED, now, at, result, attempts, reply, None, release)


def _update(
    row: Claimed,
    status: DeliveryStatus,
    now: datetime,
    next_attempt_at: datetime | None,
    result: Result | None,
    attempts: int | None,
    reply: str | None,
    sent_at: datetime | None,
    release: str | None = None,
) -> DeliveryUpdate:
    tried = attempts is not None and attempts > row["attempts"]
    return DeliveryUpdate(
        delivery_id=row["id"],
        status=status,
        next_attempt_at=next_attempt_at,
        attempts=row["attempts"] if attempts is None else attempts,
        last_code=result.code if result else row["last_code"],
        last_reply=(result.reply if result else reply or row["last_reply"] or "")[:500],
        sent_at=sent_at,
        first_attempt_at=row["first_attempt_at"] or (now if tried else None),
        updated_at=now,
        address=row["email"],
        subscriber_id=row["subscriber_id"],
        release=release,
    )
