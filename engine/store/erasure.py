"""Erasing a person (`funnel subscribers forget`): every row about them goes, a hash of the address stays.

The foreign keys cascade from `subscriber` (ON DELETE CASCADE; SQLite enforces them only
with `PRAGMA foreign_keys=ON`, which `make_engine` sets). The rows are still deleted
table by table, children first, so that an erasure is complete even on a connection
made without that pragma, and so that the counts can be reported.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.store import queries
from engine.store.tables import CONSENT, DELIVERY, ENROLLMENT, EVENT, MILESTONE, SUBSCRIBER, TAG

# Children before parents: deliveries and milestones point at enrollments, everything at the subscriber.
ERASED_TABLES = (DELIVERY, MILESTONE, EVENT, TAG, CONSENT, ENROLLMENT, SUBSCRIBER)


def _where(table: sa.Table, subscriber_id: int) -> sa.ColumnElement[bool]:
    column = table.c.id if table is SUBSCRIBER else table.c.subscriber_id
    return column == subscriber_id


def rows_about(conn: Connection, subscriber_id: int) -> dict[str, int]:
    """How many rows of each table hold something about the subscriber."""
    counts = {}
    for table in ERASED_TABLES:
        statement = sa.select(sa.func.count()).select_from(table).where(_where(table, subscriber_id))
        counts[table.name] = int(conn.execute(statement).scalar_one())
    return counts


def erase_subscriber(conn: Connection, subscriber_id: int, address: str, now: datetime) -> dict[str, int]:
    """Delete every row about the subscriber and suppress the address (as a hash); rows deleted per table."""
    deleted = {}
    for table in ERASED_TABLES:
        result = conn.execute(sa.delete(table).where(_where(table, subscriber_id)))
        deleted[table.name] = int(result.rowcount)
    # A repeated erasure request, or an address suppressed earlier for a bounce, keeps
    # its first entry: the address is blocked either way.
    queries.suppress(conn, address, "forgotten", now)
    return deleted
