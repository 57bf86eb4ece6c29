"""Group commit of web writes, and what a visitor gets when the database is locked or down."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.store.migrate import upgrade
from engine.store.tables import SUBSCRIBER
from engine.web.writer import GroupWriter
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project
from tests.web.conftest import START
from tests.web.served import serve

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _insert(address: str):  # type: ignore[no-untyped-def]
    def job(conn: Connection) -> str:
        conn.execute(sa.insert(SUBSCRIBER), [{"email": address, "email_key": address, "name": "",
                                             "created_at": NOW, "updated_at": NOW, "fields": {}}])
        return address
    return job


def test_concurrent_jobs_share_commits_and_one_failure_undoes_only_itself(db_engine: Engine) -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    writer = GroupWriter(db_engine, executor)

    async def all_jobs() -> list[object]:
        jobs = [_insert(f"p{i}@example.com") for i in range(50)]
        jobs.insert(25, _insert("p3@example.com"))  # a duplicate key: this job alone fails
        return await asyncio.gather(*(writer.run(job) for job in jobs), return_exceptions=True)

    try:
        results = asyncio.run(all_jobs())
    finally:
        executor.shutdown(wait=True)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], sa.exc.IntegrityError)
    with db_engine.connect() as conn:
        stored = set(conn.execute(sa.select(SUBSCRIBER.c.email)).scalars())
    assert stored == {f"p{i}@example.com" for i in range(50)}


def test_a_locked_database_answers_503_with_retry_after_and_the_retry_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    harness = Harness(f"sqlite:///{path}", minimal_project(tmp_path / "p"), START, busy_timeout_ms=200)
    upgrade(harness.db_engine)
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        with serve(harness) as http:
            locker.execute("BEGIN EXCLUSIVE")  # a long migration, a backup holding the lock
            refused = http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "30"
            assert "try again" in refused.json()["detail"][0]["msg"]
            locker.execute("ROLLBACK")
            retried = http.post("/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
            assert retried.status_code == 201  # nothing of the refused post was kept
            with harness.db_engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(SUBSCRIBER)).scalar_one() == 1
    finally:
        locker.close()
        harness.close()
