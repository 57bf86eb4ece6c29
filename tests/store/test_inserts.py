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
from engine.store.inserts import insert_ignoring_conflicts, insert_new, insert_rows
from engine.store.manyrows import fetch_many
from engine.store.status import DeliveryStatus
from engine.store.tables import CONSENT, DELIVERY, SUBSCRIBER
from tests.support.databases import statements_run

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


def _subscriber(i: int) -> dict[str, object]:
    return {"email": f"P{i}@Example.com", "email_key": f"p{i}@example.com", "name": "",
            "first_name": None if i % 2 else "Pat", "fields": {"plan": i} if i % 3 else {},
            "created_at": NOW, "updated_at": NOW}


def test_new_rows_are_inserted_in_one_statement_and_only_theirs_are_returned(db_engine: Engine) -> None:
    # The signups' INSERT ... ON CONFLICT DO NOTHING RETURNING (web writer): the rows it returns
    # are those it inserted, whatever their order, and what it writes is what Core writes.
    ran = statements_run(db_engine)
    with db_engine.begin() as conn:
        first = insert_new(conn, SUBSCRIBER, [_subscriber(i) for i in range(3)], ["email_key"],
                           [SUBSCRIBER.c.email_key, SUBSCRIBER.c.id])
        again = insert_new(conn, SUBSCRIBER, [_subscriber(i) for i in range(1, 6)], ["email_key"],
                           [SUBSCRIBER.c.email_key, SUBSCRIBER.c.id])
        stored = conn.execute(sa.select(SUBSCRIBER).order_by(SUBSCRIBER.c.id)).mappings().all()
    ids = {row["email_key"]: row["id"] for row in stored}
    assert sorted(first) == sorted((f"p{i}@example.com", ids[f"p{i}@example.com"]) for i in range(3))
    assert sorted(again) == sorted((f"p{i}@example.com", ids[f"p{i}@example.com"]) for i in range(3, 6))
    inserts = [s for s in ran if s.startswith("INSERT INTO subscriber")]
    if db_engine.dialect.name == "sqlite":  # a power of two rows a statement
        assert [s.count("(?") for s in inserts] == [2, 1, 4, 1]
    else:  # one a call, every column an array
        assert len(inserts) == 2 and all("FROM unnest(" in s and " RETURNING " in s for s in inserts)
    with db_engine.begin() as conn:
        conn.execute(SUBSCRIBER.delete())
        conn.execute(SUBSCRIBER.insert(), [_subscriber(i) for i in range(6)])
        core = conn.execute(sa.select(SUBSCRIBER).order_by(SUBSCRIBER.c.id)).mappings().all()
    assert [{k: v for k, v in r.items() if k != "id"} for r in stored] == [
        {k: v for k, v in r.items() if k != "id"} for r in core]
    assert (stored[0]["fields"], stored[1]["fields"], stored[0]["status"]) == ({}, {"plan": 1}, "active")


def test_rows_of_different_columns_each_return_and_nothing_new_returns_nothing(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        rows = [_subscriber(0), {k: v for k, v in _subscriber(1).items() if k != "first_name"}]
        returned = insert_new(conn, SUBSCRIBER, rows, ["email_key"], [SUBSCRIBER.c.id])
        assert len(returned) == 2 and all(len(found) == 1 for found in returned)
        assert insert_new(conn, SUBSCRIBER, rows, ["email_key"], [SUBSCRIBER.c.id]) == []
        assert insert_new(conn, SUBSCRIBER, [], ["email_key"], [SUBSCRIBER.c.id]) == []


def test_a_statement_that_cannot_be_batched_returns_its_rows_one_at_a_time(db_engine: Engine) -> None:
    # A literal "?" (SQLite cannot repeat its VALUES) and a parameter written twice (PostgreSQL
    # cannot make it one array): each row runs on its own, and every inserted row is returned.
    statement = sa.insert(SUBSCRIBER).values(
        email=sa.bindparam("email"), email_key=sa.bindparam("email_key"), name=sa.literal_column("'?'"),
        fields=sa.bindparam("fields"), created_at=sa.bindparam("at"), updated_at=sa.bindparam("at"),
    ).returning(SUBSCRIBER.c.email_key, SUBSCRIBER.c.name)
    ran = statements_run(db_engine)
    with db_engine.begin() as conn:
        rows = [{"email": f"q{i}@example.com", "email_key": f"q{i}@example.com", "fields": {}, "at": NOW}
                for i in range(3)]
        assert sorted(fetch_many(conn, statement, rows)) == [(f"q{i}@example.com", "?") for i in range(3)]
    sent = [s for s in ran if s.startswith("INSERT INTO subscriber")]
    assert len(sent) == 3


def test_consent_records_are_written_as_core_writes_them(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        sid = subscribers.upsert_subscriber(conn, {"email": "c@example.com"}, NOW)[0]
        rows = [{"subscriber_id": sid, "kind": "signup", "at": NOW, "funnel": "f", "form": None,
                 "ip": "127.0.0.1", "user_agent": None, "wording": "yes"},
                {"subscriber_id": sid, "kind": "confirm", "at": NOW + timedelta(seconds=1), "funnel": "f"}]
        insert_rows(conn, CONSENT, rows)
        fast = conn.execute(sa.select(CONSENT).order_by(CONSENT.c.id)).mappings().all()
        conn.execute(CONSENT.delete())
        for row in rows:
            conn.execute(CONSENT.insert(), [row])
        core = conn.execute(sa.select(CONSENT).order_by(CONSENT.c.id)).mappings().all()
    assert [{k: v for k, v in r.items() if k != "id"} for r in fast] == [
        {k: v for k, v in r.items() if k != "id"} for r in core]
    assert fast[1]["at"] == NOW + timedelta(seconds=1) and fast[1]["ip"] is None
