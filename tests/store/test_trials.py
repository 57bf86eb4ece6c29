"""An experiment's counts per variant (engine/store/trials.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.store import queries, signups, subscribers, trials
from engine.store.tables import DELIVERY

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _sent(conn: sa.Connection, n: int, variant: str, status: str = "sent") -> int:
    sid = subscribers.upsert_subscriber(conn, {"email": f"p{n}@example.com"}, AT)[0]
    eid = signups.enroll(conn, sid, "f", State(Stage.NURTURE, AT, segment="one"), AT)[0]
    conn.execute(
        sa.insert(DELIVERY).values(
            enrollment_id=eid,
            subscriber_id=sid,
            funnel="f",
            step="e1",
            segment="one",
            marketing=True,
            message_id=f"<m{n}@example.com>",
            status=status,
            attempts=1,
            created_at=AT,
            updated_at=AT,
            sent_at=AT if status == "sent" else None,
            variant=variant,
        )
    )
    return sid


def test_recipients_clickers_and_buyers_within_the_attribution_per_variant(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        a = [_sent(conn, i, "a") for i in range(4)]
        b = [_sent(conn, 10 + i, "b") for i in range(3)]
        _sent(conn, 20, "b", status="suppressed")  # never went: not a recipient
        for sid in (a[0], b[0], b[1]):
            queries.record_event(
                conn, sid, "click", AT + timedelta(hours=1), funnel="f", step="e1", wake=False
            )
        queries.record_event(conn, a[1], "purchase", AT + timedelta(days=2), funnel="f", wake=False)
        queries.record_event(
            conn, b[0], "purchase", AT + timedelta(days=8), funnel=None, wake=False
        )  # too late
        queries.record_event(conn, b[1], "purchase", AT - timedelta(days=1), funnel="f", wake=False)  # before
        queries.record_event(conn, b[2], "purchase", AT + timedelta(days=1), funnel="other", wake=False)
        queries.record_event(conn, b[2], "purchase", AT + timedelta(days=6), funnel=None, wake=False)
    with db_engine.connect() as conn:
        assert trials.clicks(conn, "f", "e1") == (("a", 4, 1), ("b", 3, 2))
        assert trials.purchases(conn, "f", "e1", timedelta(days=7)) == (("a", 4, 1), ("b", 3, 1))
