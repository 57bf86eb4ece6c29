"""Counts of the sending queue, as named queries: the warm-up's daily volume and /metrics' gauges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.store.status import DeliveryStatus
from engine.store.tables import DELIVERY, ENROLLMENT, STEP_PAUSE

# Any constant both sides agree on: it names "the warm-up claim" among PostgreSQL's
# advisory locks (a 64-bit key; these are the ASCII bytes of "fnwarmup").
_WARMUP_LOCK = 0x666E7761726D7570


@dataclass(frozen=True)
class QueueCounts:
    """The queue at one moment, for /metrics."""

    enrollments_due: int
    enrollments_overdue: int
    deliveries_pending: dict[str, int]  # status -> rows (queued, deferred, sending)
    paused_steps: int


def serialize_warmup_claims(conn: Connection) -> None:
    """Make concurrent claims of several daemons take turns until this transaction ends.

    While a warm-up limit holds, a claim counts the day's volume before it takes work; two
    PostgreSQL daemons counting at the same moment would both spend the same remainder.
    SQLite needs nothing: its claims take the one write lock anyway.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_WARMUP_LOCK)))


def marketing_volume_since(conn: Connection, since: datetime, now: datetime) -> int:
    """Marketing emails sent since `since`, plus those some daemon is sending now (a live lease)."""
    # Sent rows have next_attempt_at NULL; in-flight rows have it at the end of their lease.
    # The scan is over the delivery table: the warm-up asks this only during its schedule,
    # while a new sending domain's table is still small.
    sent = sa.and_(DELIVERY.c.status == DeliveryStatus.SENT, DELIVERY.c.sent_at >= since)
    in_flight = sa.and_(DELIVERY.c.status == DeliveryStatus.SENDING, DELIVERY.c.next_attempt_at > now)
    statement = sa.select(sa.func.count()).where(DELIVERY.c.marketing.is_(True), sa.or_(sent, in_flight))
    return int(conn.execute(statement).scalar_one())


def queue_counts(conn: Connection, now: datetime, overdue_before: datetime) -> QueueCounts:
    """Due and overdue enrollments, pending deliveries by status, steps paused now."""
    # All three use an index: enrollment.next_run_at, delivery.next_attempt_at (set on
    # pending rows only, NULL once final), and step_pause is a handful of rows.
    due = sa.select(
        sa.func.count().label("due"),
        sa.func.coalesce(
            sa.func.sum(sa.case((ENROLLMENT.c.next_run_at <= overdue_before, 1), else_=0)), 0
        ).label("overdue"),
    ).where(ENROLLMENT.c.next_run_at <= now)
    row = conn.execute(due).one()
    pending = conn.execute(
        sa.select(DELIVERY.c.status, sa.func.count())
        .where(DELIVERY.c.next_attempt_at.is_not(None))
        .group_by(DELIVERY.c.status)
    )
    paused = conn.execute(sa.select(sa.func.count()).where(STEP_PAUSE.c.resumed_at.is_(None)))
    return QueueCounts(
        enrollments_due=int(row.due),
        enrollments_overdue=int(row.overdue),
        deliveries_pending={str(status): int(count) for status, count in pending},
        paused_steps=int(paused.scalar_one()),
    )


def queue_counts_within(
    db_engine: Engine, now: datetime, overdue_before: datetime, timeout_ms: int
) -> QueueCounts:
    """`queue_counts` in a read of its own, which PostgreSQL gives up on after `timeout_ms`."""
    with db_engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
        return queue_counts(conn, now, overdue_before)
