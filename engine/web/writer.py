"""Group commit for the web side: requests that write at the same moment share one durable commit.

A signup must be on disk before its answer goes out (a crash after `201` must not lose
it), and a durable commit costs an fsync. One writer thread takes every job waiting
when it starts a transaction, runs each in its own savepoint (one bad job does not undo
the others) and commits once; then every request gets its own result or error.

A job whose class has `run_many(conn, jobs)` (a `Bulk` job, like a signup) runs
together with the jobs of its kind waiting next to it, in one set of statements; if
that fails, each runs on its own, so one bad job still fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.logs import log
from engine.scheduler.dbthread import in_db_thread
from engine.store.db import durable
from engine.web.context import Unavailable

T = TypeVar("T")
Job = Callable[[Connection], Any]

# Jobs in one transaction at most: bounds how long one commit holds the write lock.
MAX_BATCH = 200


class Bulk(Protocol):
    """A job that can also run with others of its own kind in one go."""

    def __call__(self, conn: Connection) -> Any:
        """Run this job alone."""
        ...  # pragma: no cover

    @classmethod
    def run_many(cls, conn: Connection, jobs: list[Any]) -> list[Any]:
        """Run `jobs` (all of this class) together; one result per job, in order."""
        ...  # pragma: no cover


class GroupWriter:
    """Runs write jobs on one thread, all jobs waiting at a moment in one durable transaction."""

    def __init__(self, db_engine: Engine, executor: Executor) -> None:
        self.db_engine = db_engine
        self.executor = executor
        self._pending: list[tuple[Job, asyncio.Future[Any]]] = []
        self._running: asyncio.Task[None] | None = None

    async def run(self, job: Callable[[Connection], T]) -> T:
        """`job(conn)`'s result once it is committed; its exception if it failed.

        A database that is down or locked raises `Unavailable` (logged as `write_failed`).
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        try:
            return await future
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:  # down, locked, cut off
            log("write_failed", logging.ERROR, job=type(job).__name__,
                error=f"{type(error).__name__}: {error}"[:500])
            raise Unavailable from error

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                outcomes = await in_db_thread(self.executor, self._write, [job for job, _ in batch])
            except Exception as error:  # the commit failed: nothing of the batch was written
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # the request went away (client disconnected)
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _write(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with durable(self.db_engine) as conn:
            for group in _runs(jobs):
                many = getattr(type(group[0]), "run_many", None)
                if many is not None and len(group) > 1:
                    try:
                        with conn.begin_nested():
                            results = many(conn, group)
                        outcomes.extend((True, result) for result in results)
                        continue
                    except Exception:  # one of them is bad: find it by running each alone
                        pass
                for job in group:
                    try:
                        with conn.begin_nested():
                            outcomes.append((True, job(conn)))
                    except Exception as error:  # this job's savepoint is rolled back, the rest commit
                        outcomes.append((False, error))
        return outcomes


def _runs(jobs: list[Job]) -> list[list[Job]]:
    """Consecutive jobs of the same class, grouped, in order."""
    runs: list[list[Job]] = []
    for job in jobs:
        if runs and type(runs[-1][0]) is type(job):
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs
