"""An experiment's counts: per variant of an email, its recipients and its successes.

A recipient is a delivery decided with that variant and not stopped before it went (a
suppressed, failed, rejected or cancelled one is not); a success is a recipient who
clicked (the delivery's `acted` click bit, kept by the stats triggers) or who bought
within the experiment's attribution time after it was sent (a purchase of the funnel or
of every funnel). One GROUP BY per email, by the (funnel, step, status) index.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa

from engine.flow.state import EventType
from engine.store.broadcast_stats import later
from engine.store.db import DbConnection
from engine.store.status import NOT_SENT
from engine.store.tables import DELIVERY, EVENT
from engine.store.tally_sql import ACTED

Counts = tuple[tuple[str, int, int], ...]  # (variant, sends, successes), by variant id


def clicks(conn: DbConnection, funnel: str, step: str) -> Counts:
    """Each variant's recipients and unique clickers."""
    clicked = sa.func.sum(sa.case(((DELIVERY.c.acted.op("&")(ACTED["clicked"])) != 0, 1), else_=0))
    return _counts(conn, funnel, step, clicked)


def purchases(conn: DbConnection, funnel: str, step: str, within: timedelta) -> Counts:
    """Each variant's recipients and unique buyers within `within` of their email going out."""
    bought = sa.exists().where(
        EVENT.c.subscriber_id == DELIVERY.c.subscriber_id,
        EVENT.c.type == EventType.PURCHASE.value,
        sa.or_(EVENT.c.funnel.is_(None), EVENT.c.funnel == funnel),
        DELIVERY.c.sent_at.is_not(None),
        EVENT.c.at >= DELIVERY.c.sent_at,
        EVENT.c.at < later(conn, DELIVERY.c.sent_at, within),  # as a broadcast's attribution counts
    )
    return _counts(conn, funnel, step, sa.func.sum(sa.case((bought, 1), else_=0)))


def _counts(conn: DbConnection, funnel: str, step: str, successes: sa.ColumnElement[int]) -> Counts:
    statement = (
        sa.select(DELIVERY.c.variant, sa.func.count().label("sends"), successes.label("successes"))
        .where(
            DELIVERY.c.funnel == funnel,
            DELIVERY.c.step == step,
            DELIVERY.c.variant.is_not(None),
            DELIVERY.c.status.not_in([s.value for s in NOT_SENT]),
        )
        .group_by(DELIVERY.c.variant)
        .order_by(DELIVERY.c.variant)
    )
    return tuple((r.variant, int(r.sends), int(r.successes or 0)) for r in conn.execute(statement))


def counts_for(
    conn: DbConnection, funnel: str, emails: Iterable[tuple[str, str, timedelta]]
) -> dict[str, Counts]:
    """(step, metric, attribution) of each experimental email of `funnel` -> its counts."""
    return {
        step: clicks(conn, funnel, step) if metric == "clicks" else purchases(conn, funnel, step, within)
        for step, metric, within in emails
    }
