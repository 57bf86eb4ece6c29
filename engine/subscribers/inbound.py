"""What people and shops tell the engine after a signup: confirmations, answers, unsubscribes,
clicks, opens and API events. Each is one function over a Connection in the caller's
transaction, so the web side decides what commits together (and how durably).

Link actions take the delivery a signed token names (`sentmail.delivery_by_message_id`):
the token proves which email the person holds, so nothing here trusts an id from a request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.flow.state import EventType, Stage
from engine.flow.status import SubscriberStatus
from engine.store import queries, sentmail
from engine.store.db import DbConnection
from engine.store.status import DeliveryStatus
from engine.store.subscribers import add_tag, remove_tag
from engine.subscribers.leads import Proof, record_consent

Stop = tuple[int, str | None]  # (subscriber, funnel); None: every funnel
# A click moves nobody on, except someone in win-back or sunset: it brings them back.
_CLICK_WAKES = (Stage.WINBACK.value, Stage.SUNSET.value)


def confirm(conn: DbConnection, delivery: Mapping[str, Any], proof: Proof, now: datetime) -> bool:
    """Confirm the double opt-in the confirmation email `delivery` asked for; False when already done."""
    new = queries.record_event(
        conn,
        delivery["subscriber_id"],
        EventType.CONFIRMED.value,
        now,
        funnel=delivery["funnel"],
        external_id=f"confirm:{delivery['message_id']}",
    )
    if new:
        record_consent(conn, delivery["subscriber_id"], delivery["funnel"], proof, now)
        # They asked again and proved the address is theirs: they may be mailed again
        # (a bounced or complained address stays as it is).
        queries.set_subscriber_status(
            conn, delivery["subscriber_id"], SubscriberStatus.ACTIVE, now,
            only_from=(SubscriberStatus.UNSUBSCRIBED,)
        )
    return new


def answer(
    conn: DbConnection, delivery: Mapping[str, Any], question: str, choice: str, now: datetime
) -> None:
    """Record a survey answer given through a link of `delivery`; a later answer overrides it."""
    queries.record_event(
        conn,
        delivery["subscriber_id"],
        EventType.ANSWER.value,
        now,
        funnel=delivery["funnel"],
        question=question,
        answer=choice,
    )


def unsubscribe(
    conn: DbConnection,
    subscriber: int,
    funnel: str | None,
    now: datetime,
    key: str,
    came_from: tuple[str, str] | None = None,
) -> tuple[list[Stop], bool]:
    """Stop marketing email from `funnel`, or from every funnel (None): (what to stop in flight, new).

    `key` names where the request came from (a message, an API call): repeating it
    records nothing twice (`new` is then False). `came_from` is the (funnel, step) of the
    email whose link was used: that step's unsubscribe count (and guardrail) includes it.
    Queued, deferred and in-flight marketing email is cancelled here; what a tick has
    already claimed and not yet sent is stopped by the dispatcher's stop list
    (scheduler/stoplist.py).
    """
    if funnel is None:
        funnels = [row["funnel"] for row in queries.enrollments_of(conn, subscriber)]
        # A bounced or complained address keeps that status: it says more.
        queries.set_subscriber_status(conn, subscriber, SubscriberStatus.UNSUBSCRIBED, now,
                                      only_from=(SubscriberStatus.ACTIVE,))
    else:
        funnels = [funnel]
    new = not funnels
    for each in funnels:
        # Per funnel, not funnel=None: a global event would also end enrollments made later,
        # when the person signs up again and confirms.
        new |= queries.record_event(
            conn,
            subscriber,
            EventType.UNSUBSCRIBE.value,
            now,
            funnel=each,
            external_id=f"unsubscribe:{key}:{funnel or '*'}:{each}"[:200],
            step=came_from[1] if came_from and came_from[0] == each else None,
        )
        queries.cancel_pending_deliveries(
            conn, subscriber, DeliveryStatus.SUPPRESSED, now, marketing_only=True, funnel=each, in_flight=True
        )
    return [(subscriber, funnel)], new


def click(conn: DbConnection, delivery: Mapping[str, Any], url: str, now: datetime) -> None:
    """Count the first click on `url` in `delivery` (unique clicks; repeats change nothing)."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    queries.record_event(
        conn,
        delivery["subscriber_id"],
        EventType.CLICK.value,
        now,
        funnel=delivery["funnel"],
        external_id=f"click:{delivery['message_id']}:{digest}"[:200],
        wake=_CLICK_WAKES,
        step=delivery["step"],
        data={"url": url},
    )


def opened(conn: DbConnection, delivery: Mapping[str, Any], now: datetime) -> None:
    """Count the first open of `delivery`: a weak signal, since image proxies fetch pixels too."""
    queries.record_event(
        conn,
        delivery["subscriber_id"],
        EventType.OPEN.value,
        now,
        funnel=delivery["funnel"],
        external_id=f"open:{delivery['message_id']}"[:200],
        wake=False,
        step=delivery["step"],
    )


def complain(
    conn: DbConnection, subscriber: int, now: datetime, key: str, delivery: Mapping[Any, Any] | None = None
) -> tuple[list[Stop], bool]:
    """A spam complaint: suppress the address, stop all its mail, count it against the email.

    `delivery` is the email complained about when the report names it; otherwise the
    latest marketing email sent to the person takes the blame (providers' feedback loops
    often strip the Message-ID). `key` makes a repeated report record nothing twice.
    """
    new, _ = _report(conn, subscriber, EventType.COMPLAINT, now, key, delivery)
    if new:
        _block(conn, subscriber, SubscriberStatus.COMPLAINED, now,
               (SubscriberStatus.ACTIVE, SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED))
    return [(subscriber, None)], new


def bounce(
    conn: DbConnection,
    subscriber: int,
    now: datetime,
    key: str,
    delivery: Mapping[Any, Any] | None = None,
    detail: str = "",
) -> tuple[list[Stop], bool]:
    """A hard bounce reported after the server accepted the message (a provider's webhook).

    The delivery it names (or the latest one sent) becomes `bounced`, so the step's bounce
    count includes it; the address is suppressed as a bounce at the SMTP conversation is.
    """
    new, delivery = _report(conn, subscriber, EventType.BOUNCE, now, key, delivery,
                            data={"detail": detail[:500]} if detail else {})
    if new:
        if delivery is not None:
            sentmail.mark_bounced_later(conn, delivery["id"], detail, now)
        _block(conn, subscriber, SubscriberStatus.BOUNCED, now,
               (SubscriberStatus.ACTIVE, SubscriberStatus.UNSUBSCRIBED))
    return [(subscriber, None)], new


def _report(
    conn: DbConnection,
    subscriber: int,
    kind: EventType,
    now: datetime,
    key: str,
    delivery: Mapping[Any, Any] | None,
    **fields: Any,
) -> tuple[bool, Mapping[Any, Any] | None]:
    """Record a complaint or a bounce against `delivery`, or the latest marketing email: (new, email)."""
    if delivery is None:
        delivery = sentmail.last_marketing_delivery(conn, subscriber, now)
    new = queries.record_event(
        conn,
        subscriber,
        kind.value,
        now,
        funnel=delivery["funnel"] if delivery else None,
        step=delivery["step"] if delivery else None,
        external_id=f"{kind.value}:{key}"[:200],
        **fields,
    )
    return new, delivery


def _block(
    conn: DbConnection,
    subscriber: int,
    status: SubscriberStatus,
    now: datetime,
    only_from: tuple[SubscriberStatus, ...],
) -> None:
    queries.set_subscriber_status(conn, subscriber, status, now, only_from=only_from)
    address = queries.subscribers_by_id(conn, [subscriber])[subscriber]["email"]
    queries.suppress(conn, address, status, now)  # the suppression's reason is the status
    queries.cancel_pending_deliveries(conn, subscriber, DeliveryStatus.SUPPRESSED, now, in_flight=True)


@dataclass(frozen=True)
class ShopEvent:
    """An event from the events API: a purchase, a tag, an untag or a custom event."""

    type: str
    product: str | None = None
    amount: float | None = None
    currency: str | None = None
    name: str | None = None  # the tag, for tag and untag
    id: str | None = None  # the caller's id: a retried call records nothing twice
    data: Mapping[str, Any] | None = None


def record_shop_event(conn: DbConnection, subscriber_id: int, event: ShopEvent, now: datetime) -> bool:
    """Record an API event for every funnel of the subscriber; False when its id was seen before.

    A purchase wakes every enrollment, and step() ends the sales paths it qualifies for.
    """
    known = {e.value for e in EventType}
    kind = event.type if event.type in known else EventType.CUSTOM.value
    name = event.name if kind != EventType.CUSTOM.value else (event.name or event.type)
    new = queries.record_event(
        conn,
        subscriber_id,
        kind,
        now,
        external_id=f"api:{event.id}"[:200] if event.id else None,
        product=event.product,
        amount=event.amount,
        currency=event.currency.upper() if event.currency else None,
        name=name,
        data=dict(event.data or {}),
    )
    if new and kind == EventType.TAG.value and name:
        add_tag(conn, subscriber_id, name, now)
    elif new and kind == EventType.UNTAG.value and name:
        remove_tag(conn, subscriber_id, name)
    return new
