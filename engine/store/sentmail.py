"""One sent email as a link token or a complaint names it, and a bounce reported after delivery."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.store.status import DeliveryStatus
from engine.store.tables import DELIVERY, ENROLLMENT, SUBSCRIBER


def delivery_by_message_id(conn: Connection, message_id: str) -> RowMapping | None:
    """The delivery a link token names, with its subscriber's address and status."""
    statement = (
        sa.select(
            DELIVERY.c.id,
            DELIVERY.c.subscriber_id,
            DELIVERY.c.enrollment_id,
            DELIVERY.c.funnel,
            DELIVERY.c.step,
            DELIVERY.c.message_id,
            DELIVERY.c.marketing,
            SUBSCRIBER.c.email,
            SUBSCRIBER.c.status.label("subscriber_status"),
            SUBSCRIBER.c.locale,  # the pages behind the links speak their language
            ENROLLMENT.c.magnet,
        )
        .join(SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id)
        .join(ENROLLMENT, ENROLLMENT.c.id == DELIVERY.c.enrollment_id)
        .where(DELIVERY.c.message_id == message_id)
    )
    return conn.execute(statement).mappings().first()


def last_marketing_delivery(conn: Connection, subscriber_id: int, before: datetime) -> RowMapping | None:
    """The latest marketing email that went out to a subscriber by `before`: what a report without
    a Message-ID is about."""
    statement = (
        sa.select(DELIVERY.c.id, DELIVERY.c.funnel, DELIVERY.c.step, DELIVERY.c.message_id)
        .where(
            DELIVERY.c.subscriber_id == subscriber_id,
            DELIVERY.c.marketing.is_(True),
            DELIVERY.c.sent_at.is_not(None),
            DELIVERY.c.sent_at <= before,
        )
        .order_by(DELIVERY.c.sent_at.desc(), DELIVERY.c.id.desc())
        .limit(1)
    )
    return conn.execute(statement).mappings().first()


def mark_bounced_later(conn: Connection, delivery_id: int, detail: str, now: datetime) -> None:
    """A message the server accepted bounced afterwards: it counts as bounced, not delivered."""
    conn.execute(
        sa.update(DELIVERY)
        .where(DELIVERY.c.id == delivery_id, DELIVERY.c.status == DeliveryStatus.SENT)
        .values(status=DeliveryStatus.BOUNCED, last_reply=(detail or "bounced after delivery")[:500],
                updated_at=now)
    )
