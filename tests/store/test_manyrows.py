"""execute_many writes what SQLAlchemy's own executemany writes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.store import manyrows, queries, signups, subscribers
from engine.store.manyrows import execute_many
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT
from tests.support.databases import statements_run

T0 = datetime(2026, 3, 2, 9, 0, 0, 250_000, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def _enrollments(db_engine: Engine, count: int) -> list[tuple[int, int]]:
    """(enrollment, subscriber) ids of `count` new enrollments in funnel f."""
    made = []
    with db_engine.begin() as conn:
        for i in range(count):
            subscriber = subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, T0)[0]
            made.append((signups.enroll(conn, subscriber, "f", State(Stage.MAGNET, T0), T0)[0], subscriber))
    return made


def _queued(enrollment: int, subscriber: int, step: str) -> dict[str, object]:
    return {"enrollment_id": enrollment, "subscriber_id": subscriber, "funnel": "f", "step": step,
            "segment": None, "marketing": True, "message_id": f"{enrollment}-{step}@example.com",
            "status": "queued", "attempts": 0, "created_at": T0, "updated_at": T0, "next_attempt_at": T0}


def _rows(db_engine: Engine, table: sa.Table) -> list[dict[str, object]]:
    with db_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def test_queued_rows_are_the_ones_the_core_insert_writes_and_a_repeat_counts_none(db_engine: Engine) -> None:
    (first, s1), (second, s2) = _enrollments(db_engine, 2)
    with db_engine.begin() as conn:
        assert queries.queue_deliveries(conn, [_queued(first, s1, "a"), _queued(second, s2, "a")]) == 2
        # Already queued (the unique enrollment and step): skipped and not counted.
        assert queries.queue_deliveries(conn, [{**_queued(first, s1, "a"), "message_id": "x@example.com"},
                                               _queued(first, s1, "b")]) == 1
    fast = _rows(db_engine, DELIVERY)
    with db_engine.begin() as conn:
        conn.execute(DELIVERY.delete())
        rows = [_queued(first, s1, "a"), _queued(second, s2, "a"), _queued(first, s1, "b")]
        conn.execute(DELIVERY.insert(), rows)
    core = _rows(db_engine, DELIVERY)
    strip = [{k: v for k, v in row.items() if k != "id"} for row in fast]
    assert strip == [{k: v for k, v in row.items() if k != "id"} for row in core]
    assert [row["acted"] for row in fast] == [0, 0, 0]  # a column left out gets its default
    assert fast[0]["created_at"] == T0 and fast[0]["created_at"].tzinfo is not None


def test_updates_write_times_json_and_nulls_as_sqlalchemy_does_and_keep_the_statements_own_values(
    db_engine: Engine,
) -> None:
    (first, s1), (second, s2) = _enrollments(db_engine, 2)
    with db_engine.begin() as conn:
        queries.queue_deliveries(conn, [_queued(first, s1, "a"), _queued(second, s2, "a")])
        conn.execute(DELIVERY.update().where(DELIVERY.c.enrollment_id == second).values(status="sent"))
    ids = [row["id"] for row in _rows(db_engine, DELIVERY)]
    later = (T0 + timedelta(hours=2)).astimezone(PARIS)  # any zone: stored as UTC
    outcome = {"status": "deferred", "next_attempt_at": later, "attempts": 1, "last_code": 451,
               "last_reply": "try later", "sent_at": None, "first_attempt_at": T0, "updated_at": T0}
    with db_engine.begin() as conn:
        # still_sending: only a row still 'sending' takes a deferral; neither is.
        queries.record_outcomes(conn, [{"_id": i, **outcome} for i in ids])
    assert [row["status"] for row in _rows(db_engine, DELIVERY)] == ["queued", "sent"]
    with db_engine.begin() as conn:
        conn.execute(DELIVERY.update().values(status="sending"))
        queries.record_outcomes(conn, [{"_id": i, **outcome} for i in ids])
    for row in _rows(db_engine, DELIVERY):
        assert row["status"] == "deferred" and row["last_code"] == 451 and row["sent_at"] is None
        assert row["next_attempt_at"] == later and row["next_attempt_at"].tzinfo is not None
    states = {"stage": "nurture", "since": T0, "done": [["s1", "main", "nurture", False]],
              "next_run_at": later, "updated_at": T0}
    ran = statements_run(db_engine)
    with db_engine.begin() as conn:
        queries.save_enrollments(conn, [{"_id": first, **states}, {"_id": second, **states, "done": []}])
    updates = [s for s in ran if s.startswith("UPDATE enrollment")]
    if db_engine.dialect.name == "postgresql":  # one statement, the JSON column among its arrays
        assert len(updates) == 1 and "%(done)b::JSON[]" in updates[0]
    rows = _rows(db_engine, ENROLLMENT)
    assert [row["done"] for row in rows] == [[["s1", "main", "nurture", False]], []]
    assert {row["next_run_at"] for row in rows} == {later}
    with db_engine.connect() as conn:  # compared in SQL, not only read back: the same text as a bind
        due = conn.execute(sa.select(sa.func.count()).select_from(ENROLLMENT)
                           .where(ENROLLMENT.c.next_run_at == later)).scalar_one()
    assert due == 2


def test_an_empty_batch_runs_nothing(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        assert execute_many(conn, DELIVERY.delete(), []) == 0


def test_times_repeated_in_a_batch_in_any_zone_and_times_that_differ_are_each_written_right(
    db_engine: Engine,
) -> None:
    # Each UTC time is converted once a batch (manyrows' memo): equal instants in two zones
    # are one text, and a time a microsecond apart is its own.
    made = _enrollments(db_engine, 4)
    times = [T0, T0.astimezone(PARIS), T0 + timedelta(microseconds=1), T0 - timedelta(days=400)]
    with db_engine.begin() as conn:
        queries.save_enrollments(conn, [{"_id": e, "next_run_at": at, "updated_at": T0}
                                        for (e, _), at in zip(made, times, strict=True)])
    assert [row["next_run_at"] for row in _rows(db_engine, ENROLLMENT)] == times
    with db_engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.count()).select_from(ENROLLMENT)
                             .where(ENROLLMENT.c.next_run_at <= T0)).scalar_one()
    assert first == 3


def test_many_rows_go_in_a_few_statements_and_write_what_one_row_at_a_time_writes(
    db_engine: Engine,
) -> None:
    # 37 rows: statements of 32, 4 and 1 rows on SQLite (a power of two each, so that a few
    # texts are prepared once); PostgreSQL inserts them in one unnest statement and updates them
    # in one statement joined to their arrays. The rows are as Core's.
    made = _enrollments(db_engine, 37)
    queued = [_queued(e, s, "a") for e, s in made]
    ran = statements_run(db_engine)
    with db_engine.begin() as conn:
        assert queries.queue_deliveries(conn, queued[:30]) == 30
        assert queries.queue_deliveries(conn, queued) == 7  # 30 already queued: skipped, not counted
    inserts = [s for s in ran if s.startswith("INSERT INTO delivery")]
    if db_engine.dialect.name == "sqlite":
        assert [s.count("(?") for s in inserts] == [16, 8, 4, 2, 32, 4, 1]
    else:  # every column an array in binary form
        assert len(inserts) == 2 and all("SELECT v." in s and "%(step)b::VARCHAR[]" in s for s in inserts)
    fast = _rows(db_engine, DELIVERY)
    with db_engine.begin() as conn:
        conn.execute(DELIVERY.delete())
        conn.execute(DELIVERY.insert(), queued)
    core = _rows(db_engine, DELIVERY)
    assert [{k: v for k, v in r.items() if k != "id"} for r in fast] == [
        {k: v for k, v in r.items() if k != "id"} for r in core]

    ids = [row["id"] for row in core]
    with db_engine.begin() as conn:  # every other row still sending: only those take a deferral
        conn.execute(DELIVERY.update().where(DELIVERY.c.id.in_(ids[::2])).values(status="sending"))
    later = T0 + timedelta(hours=1)
    deferred = [{"_id": i, "status": "deferred", "next_attempt_at": later, "attempts": n, "last_code": 451,
                 "last_reply": f"try later {n}", "sent_at": None, "first_attempt_at": T0, "updated_at": later}
                for n, i in enumerate(ids)]
    ran.clear()
    with db_engine.begin() as conn:
        queries.record_outcomes(conn, deferred)
    updates = [s for s in ran if s.startswith("UPDATE delivery")]
    if db_engine.dialect.name == "sqlite":
        assert len(updates) == 3 and all("FROM (VALUES" in s for s in updates)
    else:
        assert len(updates) == 1 and "FROM unnest(" in updates[0] and "%(_id)b::INTEGER[]" in updates[0]
    for n, row in enumerate(_rows(db_engine, DELIVERY)):
        if n % 2 == 0:
            assert (row["status"], row["attempts"], row["last_reply"]) == ("deferred", n, f"try later {n}")
            assert row["next_attempt_at"] == later and row["last_code"] == 451
        else:
            assert (row["status"], row["attempts"], row["last_reply"]) == ("queued", 0, None)


def test_a_batch_naming_one_row_twice_is_written_in_order_as_one_at_a_time(db_engine: Engine) -> None:
    # A joined UPDATE would take either of the two values: such a batch goes a row at a time.
    (first, _), (second, _) = _enrollments(db_engine, 2)
    at = [T0 + timedelta(hours=h) for h in range(3)]
    ran = statements_run(db_engine)
    with db_engine.begin() as conn:
        queries.save_enrollments(conn, [{"_id": first, "next_run_at": at[0], "updated_at": T0},
                                        {"_id": second, "next_run_at": at[1], "updated_at": T0},
                                        {"_id": first, "next_run_at": at[2], "updated_at": T0}])
    assert [row["next_run_at"] for row in _rows(db_engine, ENROLLMENT)] == [at[2], at[1]]
    assert not [s for s in ran if "FROM (VALUES" in s or "FROM unnest(" in s]


def test_enrollments_that_set_different_columns_are_each_written(db_engine: Engine) -> None:
    (first, _), (second, _) = _enrollments(db_engine, 2)
    with db_engine.begin() as conn:
        queries.save_enrollments(conn, [{"_id": first, "step": "s2", "next_run_at": T0, "updated_at": T0},
                                        {"_id": second, "stage": "nurture", "segment": "pro",
                                         "next_run_at": T0, "updated_at": T0}])
    rows = _rows(db_engine, ENROLLMENT)
    assert [(r["stage"], r["segment"], r["step"]) for r in rows] == [
        ("magnet", None, "s2"), ("nurture", "pro", None)]


def test_a_statement_of_many_rows_keeps_within_the_connections_parameter_limit() -> None:
    # SQLite's limit is 32,766 parameters since 3.32, but a build may set it lower: the rows
    # a statement are the largest power of two that fits; too few to batch, none.
    statement = queries._update_statement(ENROLLMENT, ("step", "next_run_at", "updated_at"), False)
    sql = "UPDATE enrollment SET step=?, next_run_at=?, updated_at=? WHERE enrollment.id = ?"
    names = ("step", "next_run_at", "updated_at", "_id")
    for limit, most in ((32_766, 512), (999, 128), (40, 8), (7, None)):
        batched, key = manyrows._batched(statement, sql, names, limit)
        assert (batched.most if batched else None) == most
        if batched is not None:
            assert key == 3 and batched.sql(2).count("?") == 8


def test_a_float_column_takes_ints_and_floats_in_one_batch(db_engine: Engine) -> None:
    # PostgreSQL's binary array holds one type: the ints of a float column are made floats first.
    ((_, subscriber),) = _enrollments(db_engine, 1)
    with db_engine.begin() as conn:
        for _ in range(3):
            queries.record_event(conn, subscriber, "purchase", T0, funnel="f", wake=False, amount=1.0)
        ids = [row.id for row in conn.execute(sa.select(EVENT.c.id).order_by(EVENT.c.id))]
        statement = queries._update_statement(EVENT, ("amount",), False)
        assert execute_many(conn, statement, [{"_id": ids[0], "amount": 2}, {"_id": ids[1], "amount": 2.5},
                                              {"_id": ids[2], "amount": None}]) == 3
    amounts = [row["amount"] for row in _rows(db_engine, EVENT)]
    assert amounts == [2.0, 2.5, None] and isinstance(amounts[0], float)
