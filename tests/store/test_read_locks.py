"""Reads take no write lock: a slow report beside the daemon holds back no tick, signup or health check.

On SQLite a read (`db_engine.connect()`) begins DEFERRED and read-only, a write
(`db_engine.begin()`, `durable()`) begins IMMEDIATE (engine/store/db.py). The daemons
here wait only 1 s for a lock, so anything that still queued behind the slow read
would fail with "database is locked" instead of passing late.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.scheduler import guard
from engine.scheduler.guard import check_guardrails
from engine.sequences.plan import Plan
from engine.store import pauses
from engine.store.db import DbConnection, DbEngine, durable, make_engine, snapshot
from engine.store.tables import DELIVERY, ENROLLMENT, META, SUBSCRIBER
from engine.subscribers import inbound
from tests.scheduler.harness import Harness
from tests.support.databases import sqlite_database
from tests.support.project import minimal_project
from tests.web.served import serve

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, inside minimal's weekday 08:00-11:00 window
MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
GUARDRAILS = """
guardrails:
  min_sends: 10
  unsubscribe_rate: 20%
  bounce_rate: off
  complaint_rate: 5%
"""
LOCK_WAIT_MS = 1_000
HOLD_SECONDS = 15  # the slow read's longest hold; the test ends it once everything has been tried


@contextmanager
def held_open(open_transaction: Callable[[], Iterator[None]]) -> Iterator[threading.Thread]:
    """Run `open_transaction` in a thread until the block ends; it is inside its transaction on entry."""
    inside, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            for _ in open_transaction():
                inside.set()
                done.wait(HOLD_SECONDS)
        except BaseException as error:  # shown by the test, not lost in the thread
            failures.append(error)
            inside.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert inside.wait(10)
    assert not failures, failures
    try:
        yield thread
    finally:
        done.set()
        thread.join(10)
    assert not failures, failures


def _slow_read(db_engine: DbEngine) -> Callable[[], Iterator[None]]:
    """A report: a read transaction that has read the subscribers and stays open."""
    def read() -> Iterator[None]:
        with db_engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(SUBSCRIBER)).scalar_one() >= 1
            yield
    return read


def test_while_a_slow_read_runs_a_tick_sends_a_signup_answers_201_and_healthz_at_once(
    db_url: str, tmp_path: Path
) -> None:
    harness = Harness(db_url, minimal_project(tmp_path / "project"), START, busy_timeout_ms=LOCK_WAIT_MS)
    try:
        harness.add("ann@example.com")
        with serve(harness) as http, held_open(_slow_read(harness.db_engine)) as reader:
            began = time.monotonic()
            health = http.get("/healthz")
            assert time.monotonic() - began < 1.0
            assert health.status_code == 200, health.text
            assert health.json()["checks"]["database"] == "ok"

            signup = http.post("/subscribe", json={"email": "bo@example.com", "funnel": "minimal"})
            assert signup.status_code == 201, signup.text

            report = harness.tick()  # decide, send and record both confirmation requests
            assert (report.decided, report.attempted) == (2, 2)
            assert reader.is_alive()  # the read was open through all of it
        assert sorted(m.rcpt_to for m in harness.transport.sent) == ["ann@example.com", "bo@example.com"]
        assert [d["status"] for d in harness.deliveries()] == ["sent", "sent"]
    finally:
        harness.close()


def test_a_guardrail_check_that_pauses_nothing_waits_for_no_writer(db_url: str, tmp_path: Path) -> None:
    harness = Harness(db_url, minimal_project(tmp_path / "project"), START, busy_timeout_ms=LOCK_WAIT_MS)
    try:
        harness.add("ann@example.com")
        harness.tick()

        def write() -> Iterator[None]:  # a long write beside the check: an import, another daemon's tick
            with harness.db_engine.begin() as conn:
                conn.execute(sa.update(ENROLLMENT).values(updated_at=harness.clock.now()))
                yield

        with held_open(write):  # a check that queued for the lock would fail with "database is locked"
            plans = harness.daemon.live.current.plans
            assert check_guardrails(harness.db_engine, plans, harness.clock.now()) == []
    finally:
        harness.close()


def test_a_step_a_person_paused_and_resumed_while_it_was_counted_is_not_paused_on_the_old_numbers(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = minimal_project(tmp_path / "project")
    sequence = project / "sequences" / "minimal.yaml"
    sequence.write_text(sequence.read_text() + GUARDRAILS)
    harness = Harness(db_url, project, MONDAY)
    try:
        names = [f"a{i}@example.com" for i in range(10)]
        for name in names:
            harness.add(name, answers={"level": "new"})
            harness.event(name, "confirmed", funnel="minimal")
        harness.run_until(MONDAY + timedelta(days=2, hours=4))  # e1 goes out Wednesday 08:00
        with harness.db_engine.begin() as conn:  # 3 of 10 unsubscribe from e1: over the 20%
            for row in conn.execute(sa.select(DELIVERY).where(DELIVERY.c.step == "e1").limit(3)).mappings():
                inbound.unsubscribe(conn, row["subscriber_id"], "minimal", harness.clock.now(),
                                    row["message_id"], came_from=("minimal", "e1"))
        counted = guard._breaches

        def counted_then_a_person_acts(conn: DbConnection, plans: Mapping[str, Plan]) -> Any:
            found = counted(conn, plans)
            assert [(counts.step, breach.metric) for counts, breach, _ in found] == [("e1", "unsubscribes")]
            with harness.db_engine.begin() as other:  # `funnel pause`, then `funnel resume`
                pauses.pause(other, "minimal", "e1", pauses.Breach("manual", "checking"), harness.clock.now())
                pauses.resume(other, "minimal", "e1", "ops", harness.clock.now())
            return found

        monkeypatch.setattr(guard, "_breaches", counted_then_a_person_acts)
        plans = harness.daemon.live.current.plans
        assert check_guardrails(harness.db_engine, plans, harness.clock.now()) == []
        with harness.db_engine.connect() as conn:
            assert [(row["step"], row["metric"]) for row in pauses.pauses(conn)] == [("e1", "manual")]
            assert pauses.paused_steps(conn) == {}
            history = [(e["action"], e["metric"]) for e in reversed(pauses.guardrail_events(conn))]
        assert history == [("paused", "manual"), ("resumed", None)]
    finally:
        harness.close()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[DbEngine]:
    """A migrated SQLite file database (what is true of SQLite's locks only)."""
    with sqlite_database(tmp_path) as url:
        db_engine = make_engine(url, LOCK_WAIT_MS)
        yield db_engine
        db_engine.dispose()


def _write_lock_free(db_engine: DbEngine) -> bool:
    """Whether another connection could take SQLite's write lock at once."""
    other = sqlite3.connect(str(db_engine.url.database), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "database is locked" in str(error)
        return False
    finally:
        other.close()


def test_sqlite_reads_and_snapshots_take_no_write_lock_and_writes_take_it_at_begin(
    sqlite_engine: DbEngine,
) -> None:
    with sqlite_engine.connect() as conn:
        conn.execute(sa.select(SUBSCRIBER.c.id)).all()
        assert _write_lock_free(sqlite_engine)
    with snapshot(sqlite_engine) as conn:
        conn.execute(sa.select(SUBSCRIBER.c.id)).all()
        assert _write_lock_free(sqlite_engine)
    with sqlite_engine.begin():  # before any statement: two writers queue at BEGIN, never fail later
        assert not _write_lock_free(sqlite_engine)
    with durable(sqlite_engine):
        assert not _write_lock_free(sqlite_engine)
    assert _write_lock_free(sqlite_engine)


def test_a_write_in_a_sqlite_read_transaction_fails_at_once_and_writes_nothing(
    sqlite_engine: DbEngine,
) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.select(META.c.key)).all() == []  # read first, then a mistaken write
        with pytest.raises(sa.exc.OperationalError, match="attempt to write a readonly database"):
            conn.execute(sa.insert(META).values(key="first", value={}, updated_at=START))
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.select(META.c.key)).all() == []
    with sqlite_engine.begin() as conn:  # the same pooled connection writes in a write transaction
        conn.execute(sa.insert(META).values(key="second", value={}, updated_at=START))
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.select(META.c.key)).scalars().all() == ["second"]
