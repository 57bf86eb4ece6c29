"""Write jobs in one durable transaction: together when they can be, each alone when one fails.

The web writer's batches go through `run_durably`; these pin, on both databases, that a
batch of one kind of Bulk job runs without savepoints, that one bad job in it still fails
alone with every other job written once, and that other batches keep a savepoint per job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.store.db import ConnectionLost, make_engine
from engine.store.jobs import run_durably
from engine.store.tables import SUBSCRIBER
from tests.support.databases import postgres_database, statements_run
from tests.support.outage import end_connections

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _row(address: str) -> dict[str, Any]:
    return {"email": address, "email_key": address, "name": "", "created_at": NOW, "updated_at": NOW,
            "fields": {}}


class _Add:
    """A Bulk job: one subscriber row; many of them in one INSERT."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __call__(self, conn: Connection) -> str:
        return self.run_many(conn, [self])[0]

    @classmethod
    def run_many(cls, conn: Connection, jobs: list[_Add]) -> list[str]:
        conn.execute(sa.insert(SUBSCRIBER), [_row(job.address) for job in jobs])
        return [job.address for job in jobs]


def _plain(address: str):  # type: ignore[no-untyped-def]
    def job(conn: Connection) -> str:
        conn.execute(sa.insert(SUBSCRIBER), [_row(address)])
        return address
    return job


def _stored(db_engine: Engine) -> list[str]:
    with db_engine.connect() as conn:
        return sorted(conn.execute(sa.select(SUBSCRIBER.c.email)).scalars())


def _savepoints(ran: list[str]) -> int:
    return sum(1 for sql in ran if sql.upper().startswith("SAVEPOINT"))


def test_a_batch_of_one_bulk_kind_runs_together_without_savepoints(db_engine: Engine) -> None:
    ran = statements_run(db_engine)
    outcomes = run_durably(db_engine, [_Add(f"p{i}@example.com") for i in range(5)])
    assert outcomes == [(True, f"p{i}@example.com") for i in range(5)]
    assert _stored(db_engine) == [f"p{i}@example.com" for i in range(5)]
    assert _savepoints(ran) == 0
    assert sum(1 for sql in ran if sql.upper().startswith("INSERT")) == 1
    one = run_durably(db_engine, [_Add("alone@example.com")])  # a batch of one: the same way
    assert one == [(True, "alone@example.com")] and _savepoints(ran) == 0


def test_one_bad_job_of_a_bulk_batch_fails_alone_and_the_others_are_written_once(db_engine: Engine) -> None:
    run_durably(db_engine, [_Add("taken@example.com")])
    ran = statements_run(db_engine)
    jobs = [_Add("a@example.com"), _Add("taken@example.com"), _Add("b@example.com")]
    outcomes = run_durably(db_engine, jobs)
    # The first try (all three, no savepoint) was rolled back whole: had it kept a@, the run
    # one by one would have failed a@ on its unique key too.
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], sa.exc.IntegrityError)
    assert [outcomes[0][1], outcomes[2][1]] == ["a@example.com", "b@example.com"]
    assert _stored(db_engine) == ["a@example.com", "b@example.com", "taken@example.com"]
    inserts = [sql for sql in ran if sql.upper().startswith("INSERT")]
    assert len(inserts) == 4  # the three together once, then each alone (not together again)
    assert _savepoints(ran) == 3


def test_a_batch_of_mixed_jobs_keeps_a_savepoint_per_job(db_engine: Engine) -> None:
    ran = statements_run(db_engine)
    jobs = [_Add("a@example.com"), _plain("a@example.com"), _plain("c@example.com")]
    outcomes = run_durably(db_engine, jobs)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert _stored(db_engine) == ["a@example.com", "c@example.com"]
    assert _savepoints(ran) == 3


def test_a_batch_on_a_connection_the_server_just_dropped_is_written_on_a_new_one() -> None:
    # A pooled PostgreSQL connection used a moment ago is not pinged (store/db.py):
    # if the server dropped it, the batch's first statement fails on it, nothing is written,
    # and the batch runs again on a new connection, Bulk or not.
    with postgres_database() as url:
        db_engine = make_engine(url, pool_size=1, max_overflow=0)
        run_durably(db_engine, [_Add("first@example.com")])
        assert end_connections(url) == 1
        outcomes = run_durably(db_engine, [_Add("a@example.com"), _Add("b@example.com")])
        assert outcomes == [(True, "a@example.com"), (True, "b@example.com")]
        assert end_connections(url) == 1
        assert run_durably(db_engine, [_plain("c@example.com"), _Add("d@example.com")]) == [
            (True, "c@example.com"), (True, "d@example.com")]
        assert _stored(db_engine) == ["a@example.com", "b@example.com", "c@example.com", "d@example.com",
                                      "first@example.com"]
        db_engine.dispose()


def _cut_off(conn: Connection) -> None:
    """A job during which the server ends the connection (each time it runs)."""
    conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))


class _CutOffAdd(_Add):
    """A Bulk job whose every run (together or alone) has the server end the connection."""

    @classmethod
    def run_many(cls, conn: Connection, jobs: list[_Add]) -> list[str]:
        _cut_off(conn)
        return super().run_many(conn, jobs)


def test_a_batch_that_loses_its_connection_again_fails_whole_as_connection_lost() -> None:
    with postgres_database() as url:
        db_engine = make_engine(url)
        plain_then_cut: list[Any] = [_plain("a@example.com"), _cut_off]
        for jobs in (plain_then_cut, [_CutOffAdd("b@example.com"), _CutOffAdd("c@example.com")]):
            with pytest.raises(ConnectionLost) as raised:
                run_durably(db_engine, jobs)
            assert isinstance(raised.value.__cause__, sa.exc.OperationalError)
        assert _stored(db_engine) == []  # nothing of either batch
        db_engine.dispose()
