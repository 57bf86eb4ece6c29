"""Releases: which files a daemon served from when, and the held emails a new release may mend."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.store.inserts import insert_ignoring_conflicts
from engine.store.status import DeliveryStatus
from engine.store.tables import DELIVERY, RELEASE

# The reply a delivery held for its template files starts with (engine/scheduler/sending.py).
HELD_PREFIX = "held: "


def record_release(conn: Connection, release_id: str, digest: str, at: datetime,
                   summary: dict[str, Any]) -> bool:
    """Store a release that went live; False when it is there already (another daemon wrote it)."""
    row = {"id": release_id, "hash": digest, "went_live_at": at, "summary": summary}
    return insert_ignoring_conflicts(conn, RELEASE, [row], ["hash"]) == 1


def wake_held(conn: Connection, now: datetime, within: timedelta) -> int:
    """Make deliveries held for their template files due now (held at most `within` ahead)."""
    statement = (
        sa.update(DELIVERY)
        .where(
            # The range uses the next_attempt_at index: held mail is due within `within`.
            DELIVERY.c.next_attempt_at > now,
            DELIVERY.c.next_attempt_at <= now + within,
            DELIVERY.c.status == DeliveryStatus.DEFERRED,
            DELIVERY.c.last_reply.startswith(HELD_PREFIX, autoescape=True),
        )
        .values(next_attempt_at=now)
    )
    return conn.execute(statement).rowcount or 0

