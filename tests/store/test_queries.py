"""The storage contract: every named query behaves the same on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.store import queries, signups, subscribers
from engine.store.migrate import current_revision, head_revision, upgrade
from engine.store.rows import email_hash
from engine.store.tables import DELIVERY, ENROLLMENT, METADATA, SUBSCRIBER

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _subscriber(db_engine: Engine, address: str, **values: object) -> int:
    with db_engine.begin() as conn:
        return subscribers.upsert_subscriber(conn, {"email": address, **values}, T0)[0]


def _enrolled(db_engine: Engine, address: str, funnel: str = "f", due: datetime = T0) -> int:
    subscriber = _subscriber(db_engine, address)
    with db_engine.begin() as conn:
        enrollment, _ = signups.enroll(conn, subscriber, funnel, State(Stage.MAGNET, T0), due)
    return enrollment


def _delivery(enrollment: int, subscriber: int, step: str, due: datetime = T0) -> dict[str, object]:
    return {
        "enrollment_id": enrollment,
        "subscriber_id": subscriber,
        "funnel": "f",
        "step": step,
        "segment": None,
        "marketing": True,
        "message_id": f"{enrollment}-{step}@example.com",
        "status": "queued",
        "attempts": 0,
        "created_at": due,
        "updated_at": due,
        "next_attempt_at": due,
    }


def test_the_migrations_build_exactly_the_tables_the_models_declare(db_engine: Engine) -> None:
    assert current_revision(db_engine) == head_revision()
    upgrade(db_engine)  # a second upgrade is a no-op
    with db_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []


def test_a_subscriber_is_one_row_per_address_whatever_its_case(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        first, created = subscribers.upsert_subscriber(
            conn, {"email": "Ana.Kovacs@Example.COM", "name": "Ana", "fields": {"a": "1"}}, T0
        )
        again, created_again = subscribers.upsert_subscriber(
            conn, {"email": "ana.kovacs@example.com", "name": "", "fields": {"b": "2"}}, T0
        )
    assert created and not created_again and first == again
    with db_engine.connect() as conn:
        row = conn.execute(sa.select(SUBSCRIBER)).mappings().one()
    # The first spelling is kept with its domain lowercased; an empty name does not wipe the known one.
    assert row["email"] == "Ana.Kovacs@example.com"
    assert row["name"] == "Ana"
    assert row["fields"] == {"a": "1", "b": "2"}


def test_enrolling_twice_keeps_one_enrollment(db_engine: Engine) -> None:
    subscriber = _subscriber(db_engine, "a@example.com")
    with db_engine.begin() as conn:
        first = signups.enroll(conn, subscriber, "f", State(Stage.MAGNET, T0), T0)
        second = signups.enroll(conn, subscriber, "f", State(Stage.MAGNET, T0), T0)
    assert first[1] is True and second == (first[0], False)


def test_times_come_back_as_aware_utc_and_naive_times_are_refused(db_engine: Engine) -> None:
    budapest = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Budapest")
    )
    with db_engine.begin() as conn:
        subscribers.upsert_subscriber(conn, {"email": "t@example.com"}, budapest)
    with db_engine.connect() as conn:
        created = conn.execute(sa.select(SUBSCRIBER.c.created_at)).scalar_one()
    assert created == datetime(2026, 3, 2, 10, 0, tzinfo=UTC) and created.tzinfo is UTC
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), db_engine.begin() as conn:
        subscribers.upsert_subscriber(conn, {"email": "n@example.com"}, datetime(2026, 3, 2))


def test_claiming_takes_only_due_enrollments_oldest_first_and_at_most_the_limit(db_engine: Engine) -> None:
    late = _enrolled(db_engine, "late@example.com", due=T0 - timedelta(hours=1))
    older = _enrolled(db_engine, "older@example.com", due=T0 - timedelta(hours=2))
    _enrolled(db_engine, "future@example.com", due=T0 + timedelta(minutes=1))
    now_due = _enrolled(db_engine, "now@example.com", due=T0)
    with db_engine.begin() as conn:
        assert [r["id"] for r in queries.claim_due_enrollments(conn, T0, 10)] == [older, late, now_due]
    with db_engine.begin() as conn:
        assert [r["id"] for r in queries.claim_due_enrollments(conn, T0, 2)] == [older, late]


def test_a_second_delivery_for_the_same_step_is_never_queued(db_engine: Engine) -> None:
    enrollment = _enrolled(db_engine, "a@example.com")
    with db_engine.begin() as conn:
        subscriber = queries.find_subscriber(conn, "a@example.com")
        assert subscriber is not None
        assert queries.queue_deliveries(conn, [_delivery(enrollment, subscriber["id"], "s1")]) == 1
        again = {**_delivery(enrollment, subscriber["id"], "s1"), "message_id": "other@example.com"}
        assert queries.queue_deliveries(conn, [again]) == 0
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(DELIVERY)).scalar_one() == 1


def test_a_claimed_delivery_is_leased_and_comes_back_when_the_lease_runs_out(db_engine: Engine) -> None:
    enrollment = _enrolled(db_engine, "a@example.com")
    with db_engine.begin() as conn:
        subscriber = queries.find_subscriber(conn, "a@example.com")
        assert subscriber is not None
        queries.queue_deliveries(
            conn,
            [
                _delivery(enrollment, subscriber["id"], "s1"),
                _delivery(enrollment, subscriber["id"], "s2", T0 + timedelta(hours=1)),
            ],
        )
    lease_end = T0 + timedelta(minutes=5)
    with db_engine.begin() as conn:
        claimed = queries.claim_due_deliveries(conn, T0, 10, lease_end)
    assert [(r["step"], r["email"], r["subscriber_status"]) for r in claimed] == [
        ("s1", "a@example.com", "active")
    ]
    with db_engine.begin() as conn:
        assert queries.claim_due_deliveries(conn, T0 + timedelta(minutes=4), 10, lease_end) == []
    with db_engine.connect() as conn:
        status = conn.execute(sa.select(DELIVERY.c.status).where(DELIVERY.c.step == "s1")).scalar_one()
    assert status == "sending"
    with db_engine.begin() as conn:  # the claimer died: the lease ends and the row is due again
        again = queries.claim_due_deliveries(conn, lease_end, 10, lease_end + timedelta(minutes=5))
    assert [(r["step"], r["status"]) for r in again] == [("s1", "sending")]


def test_an_event_with_a_known_id_is_recorded_once_and_wakes_the_subscriber(db_engine: Engine) -> None:
    enrollment = _enrolled(db_engine, "a@example.com", due=T0 + timedelta(days=3))
    with db_engine.begin() as conn:
        subscriber = queries.find_subscriber(conn, "A@example.com")
        assert subscriber is not None
        at = T0 + timedelta(hours=1)
        assert queries.record_event(
            conn,
            subscriber["id"],
            "purchase",
            at,
            external_id="order-1",
            product="shoes",
            amount=49.0,
            currency="EUR",
        )
        assert not queries.record_event(conn, subscriber["id"], "purchase", at, external_id="order-1")
        events = queries.events_by_subscriber(conn, [subscriber["id"]])[subscriber["id"]]
    assert [(e["type"], e["product"], e["amount"]) for e in events] == [("purchase", "shoes", 49.0)]
    with db_engine.connect() as conn:
        due = conn.execute(
            sa.select(ENROLLMENT.c.next_run_at).where(ENROLLMENT.c.id == enrollment)
        ).scalar_one()
    assert due == T0 + timedelta(hours=1)


def test_suppression_is_by_address_in_any_case_and_idempotent(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        assert queries.suppress(conn, "Gone@Example.com", "bounced", T0, "550 5.1.1 no such user")
        assert not queries.suppress(conn, "gone@example.com", "bounced", T0)
        assert queries.is_suppressed(conn, "GONE@example.COM")
        assert not queries.is_suppressed(conn, "here@example.com")
        queries.suppress(conn, "left@example.com", "unsubscribed", T0)
        hashes = [email_hash(a) for a in ("here@example.com", "GONE@example.com", "left@example.com")]
        assert queries.suppressed_hashes(conn, hashes * 2) == set(hashes[1:])  # many at once, repeats too
        assert queries.suppressed_hashes(conn, []) == set()


def test_cancelling_pending_deliveries_leaves_sent_ones_alone(db_engine: Engine) -> None:
    enrollment = _enrolled(db_engine, "a@example.com")
    with db_engine.begin() as conn:
        subscriber = queries.find_subscriber(conn, "a@example.com")
        assert subscriber is not None
        queries.queue_deliveries(conn, [_delivery(enrollment, subscriber["id"], s) for s in ("s1", "s2")])
        conn.execute(
            sa.update(DELIVERY).where(DELIVERY.c.step == "s1").values(status="sent", next_attempt_at=None)
        )
        assert queries.cancel_pending_deliveries(conn, subscriber["id"], "suppressed", T0) == 1
    with db_engine.connect() as conn:
        rows = conn.execute(sa.select(DELIVERY.c.step, DELIVERY.c.status).order_by(DELIVERY.c.step)).all()
    assert [tuple(r) for r in rows] == [("s1", "sent"), ("s2", "suppressed")]


def test_concurrent_claims_never_take_the_same_enrollment(db_engine: Engine, db_url: str) -> None:
    """Two transactions claiming at once split the due rows between them (SKIP LOCKED, or SQLite's lock)."""
    for i in range(40):
        _enrolled(db_engine, f"s{i}@example.com")
    barrier = threading.Barrier(2, timeout=10)
    taken: list[list[int]] = [[], []]

    def claim(slot: int) -> None:
        with db_engine.begin() as conn:
            rows = queries.claim_due_enrollments(conn, T0, 25)
            taken[slot] = [r["id"] for r in rows]
            if db_engine.dialect.name == "postgresql":
                barrier.wait()  # both hold their locks at the same time

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    if db_engine.dialect.name == "postgresql":
        assert not set(taken[0]) & set(taken[1])
        assert len(taken[0]) + len(taken[1]) == 40
    else:  # SQLite: one writer at a time; the second sees the same rows only after the first commits
        assert len(taken[0]) == len(taken[1]) == 25
