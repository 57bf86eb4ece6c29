"""Group commit for the web side: requests that write at the same moment share one durable commit.

A signup must be on disk before its answer goes out (a crash after `201` must not lose
it), and a durable commit costs an fsync. One writer thread takes every job waiting
when it starts a transaction, runs each in its own savepoint (one bad job does not undo
the others) and commits once; then every request gets its own result or error.

A job whose class has `run_many(conn, jobs)` (a `Bulk` job, like a signup) runs
together with the jobs of its kind waiting next to it, in one set of statements; if
that fails, each runs on its own, so one bad job still fails alone (engine/store/jobs.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

from engine.logs import log
from engine.scheduler.dbthread import in_db_thread
from engine.scheduler.groupcommit import GroupCommit
from engine.store.db import UNAVAILABLE_ERRORS, DbConnection, DbEngine, Unavailable
from engine.store.jobs import Bulk, Job, run_durably

__all__ = ["MAX_BATCH", "Bulk", "GroupWriter", "Job"]

T = TypeVar("T")

# Jobs in one transaction at most: bounds how long one commit holds the write lock.
MAX_BATCH = 200


class GroupWriter:
    """Runs write jobs on one thread, all jobs waiting at a moment in one durable transaction."""

    def __init__(self, db_engine: DbEngine, executor: Executor) -> None:
        self.db_engine = db_engine
        self.executor = executor
        self._group: GroupCommit[Job] = GroupCommit(self._write_batch, MAX_BATCH)

    async def run(self, job: Callable[[DbConnection], T]) -> T:
        """`job(conn)`'s result once it is committed; its exception if it failed.

        A database that is down or locked raises `Unavailable` (logged as `write_failed`).
        """
        try:
            return cast(T, await self._group.submit(job))
        except UNAVAILABLE_ERRORS as error:  # down, locked, cut off
            log("write_failed", logging.ERROR, job=type(job).__name__,
                error=f"{type(error).__name__}: {error}"[:500])
            raise Unavailable from error

    async def _write_batch(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        return await in_db_thread(self.executor, self._write, jobs)

    def _write(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        return run_durably(self.db_engine, jobs)
