"""Inserting rows that may be there already, many at once: the same rows and counts on both databases.

On PostgreSQL several rows go as one INSERT ... SELECT FROM unnest(arrays); these pin that
it writes every value as a row-by-row INSERT would (NULLs, enums, aware times), counts
only the rows it added, and skips the ones a unique key already holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.store import signups, subscribers
from engine.store.inserts import insert_ignoring_conflicts
from engine.store.status import DeliveryStatus
from engine.store.tables import DELIVERY

NOW = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def _rows(conn: sa.Connection, count: int) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        sid = subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, NOW)[0]
        eid = signups.enroll(conn, sid, "f", State(Stage.NURTURE, NOW), NOW)[0]
        rows.append({"enrollment_id": eid, "subscriber_id": sid, "funnel": "f", "step": "e1",
                     "segment": None if i % 2 else "pro", "marketing": bool(i % 2),
                     "message_id": f"<{eid}@example.com>", "status": DeliveryStatus.QUEUED, "attempts": 0,
                     "created_at": NOW, "updated_at": NOW, "next_attempt_at": NOW + timedelta(minutes=i)})
    return rows


def test_many_rows_are_inserted_once_with_every_value_and_counted(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        rows = _rows(conn, 5)
        assert insert_ignoring_conflicts(conn, DELIVERY, rows[:3], ["enrollment_id", "step"]) == 3
        # Two of these are there already: only the two new ones count.
        assert insert_ignoring_conflicts(conn, DELIVERY, rows[1:], ["enrollment_id", "step"]) == 2
        assert insert_ignoring_conflicts(conn, DELIVERY, rows, ["enrollment_id", "step"]) == 0
        stored = conn.execute(sa.select(DELIVERY).order_by(DELIVERY.c.id)).mappings().all()
    assert [(r["segment"], r["marketing"], r["status"], r["next_attempt_at"]) for r in stored] == [
        (row["segment"], row["marketing"], "queued", row["next_attempt_at"]) for row in rows]
    assert {r["created_at"] for r in stored} == {NOW}  # microseconds and zone kept
