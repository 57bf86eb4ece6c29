"""Putting people into funnels: the one enrollment row, the consent record, who is in which funnel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.flow.state import State
from engine.store.inserts import insert_ignoring_conflicts, insert_new, insert_rows
from engine.store.rows import state_values
from engine.store.tables import CONSENT, ENROLLMENT


def enrollment_row(
    subscriber_id: int, funnel: str, state: State, now: datetime, magnet: str | None = None
) -> dict[str, Any]:
    """A new enrollment in `funnel`, at `state` and due now; every row has the same keys."""
    return {
        "subscriber_id": subscriber_id,
        "funnel": funnel,
        "magnet": magnet,
        **state_values(state),
        "next_run_at": now,
        "created_at": now,
        "updated_at": now,
    }


def enroll(
    conn: Connection, subscriber_id: int, funnel: str, state: State, now: datetime, magnet: str | None = None
) -> tuple[int, bool]:
    """(id, created): put the subscriber in `funnel`, due now; a second call changes nothing."""
    row = enrollment_row(subscriber_id, funnel, state, now, magnet)
    created = insert_ignoring_conflicts(conn, ENROLLMENT, [row], ["subscriber_id", "funnel"]) == 1
    found = conn.execute(
        sa.select(ENROLLMENT.c.id).where(
            ENROLLMENT.c.subscriber_id == subscriber_id, ENROLLMENT.c.funnel == funnel
        )
    ).scalar_one()
    return int(found), created


def enroll_new(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[int, str], int]:
    """Add these enrollment rows (`enrollment_row`) in one statement, skipping pairs already
    enrolled: (subscriber id, funnel) -> id of each one added."""
    returned = insert_new(conn, ENROLLMENT, rows, ["subscriber_id", "funnel"],
                          [ENROLLMENT.c.subscriber_id, ENROLLMENT.c.funnel, ENROLLMENT.c.id])
    return {(int(subscriber), str(funnel)): int(id_) for subscriber, funnel, id_ in returned}


def enrollment_stages(
    conn: Connection, subscriber_ids: Iterable[int]
) -> dict[tuple[int, str], tuple[int, str]]:
    """(subscriber id, funnel) -> (enrollment id, stage), for every enrollment of these subscribers."""
    wanted = list(set(subscriber_ids))
    if not wanted:
        return {}
    statement = sa.select(
        ENROLLMENT.c.subscriber_id, ENROLLMENT.c.funnel, ENROLLMENT.c.id, ENROLLMENT.c.stage
    ).where(ENROLLMENT.c.subscriber_id.in_(wanted))
    return {(int(s), f): (int(e), str(stage)) for s, f, e, stage in conn.execute(statement)}


def enrollments_by_subscriber(conn: Connection, subscriber_ids: Iterable[int]) -> dict[int, list[RowMapping]]:
    """Subscriber id -> their enrollments, oldest first, in one statement for all of them."""
    found: dict[int, list[RowMapping]] = defaultdict(list)
    wanted = list(set(subscriber_ids))
    if not wanted:
        return found
    statement = sa.select(ENROLLMENT).where(ENROLLMENT.c.subscriber_id.in_(wanted)).order_by(ENROLLMENT.c.id)
    for row in conn.execute(statement).mappings():
        found[row["subscriber_id"]].append(row)
    return found


def record_consents(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep the proof of signups, confirmations or imports (consent rows), many rows a statement."""
    insert_rows(conn, CONSENT, rows)
