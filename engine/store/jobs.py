"""Write jobs run together: one durable transaction, each job in its own savepoint.

The web writer (engine/web/writer.py) hands its waiting jobs here in one batch: one
bad job is rolled back to its savepoint and fails alone, the others commit together.
A job whose class has `run_many(conn, jobs)` (a `Bulk` job, like a signup) runs with
the jobs of its kind waiting next to it, in one set of statements; if that fails,
each runs on its own, so one bad job still fails alone.

A batch of Bulk jobs of one kind only (signups at a busy moment: the batch a writer sees
most) first runs without a savepoint: a `SAVEPOINT` and its `RELEASE` were two of the
eight statements a batch of signups sends to PostgreSQL, each a wait for the server. If any
of it fails, that transaction is rolled back whole and the batch runs again as above.

A connection lost before the commit (the server dropped it) is not a failure of the jobs:
nothing was written, and the batch runs once more on a new connection (`run_durably`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from engine.store.db import DbConnection, DbEngine, durable, once_more_if_lost

Job = Callable[[DbConnection], Any]


class Bulk(Protocol):
    """A job that can also run with others of its own kind in one go."""

    def __call__(self, conn: DbConnection) -> Any:
        """Run this job alone."""
        ...  # pragma: no cover

    @classmethod
    def run_many(cls, conn: DbConnection, jobs: list[Any]) -> list[Any]:
        """Run `jobs` (all of this class) together; one result per job, in order."""
        ...  # pragma: no cover


def run_durably(db_engine: DbEngine, jobs: list[Job]) -> list[tuple[bool, Any]]:
    """Run `jobs` in one durable transaction; per job (True, its result) or (False, its exception).

    An exception out of here (the commit failed, or the database cannot be reached) means
    nothing of the batch was written. A connection lost before the commit is not a failure of
    the jobs: the batch runs once more on a new one (`once_more_if_lost`); lost again, it is
    `ConnectionLost`, which callers answer with 503.
    """
    return once_more_if_lost(partial(_run, db_engine, jobs))


def _run(db_engine: DbEngine, jobs: list[Job]) -> list[tuple[bool, Any]]:
    runs = _runs(jobs)
    if len(runs) == 1 and hasattr(type(jobs[0]), "run_many"):
        try:
            return [(True, result) for result in _all_at_once(db_engine, jobs)]
        except _OneFailed:  # rolled back, nothing written: find the bad one, each job alone
            return _each_alone(db_engine, runs, together=False)
    return _each_alone(db_engine, runs, together=True)


def _each_alone(db_engine: DbEngine, runs: list[list[Job]], together: bool) -> list[tuple[bool, Any]]:
    """Each job in its own savepoint (Bulk jobs of a kind first all together, if `together`).

    A job that fails because the connection went away fails the batch (`durable` names it
    `ConnectionLost`): the jobs after it would fail on the dead connection, not on their own.
    """
    outcomes: list[tuple[bool, Any]] = []
    with durable(db_engine) as conn:
        for group in runs:
            many = getattr(type(group[0]), "run_many", None)
            if many is not None and len(group) > 1 and together:
                try:
                    with conn.begin_nested():
                        results = many(conn, group)
                    outcomes.extend((True, result) for result in results)
                    continue
                except Exception:  # one of them is bad: find it by running each alone
                    if conn.invalidated:
                        raise
            for job in group:
                try:
                    with conn.begin_nested():
                        outcomes.append((True, job(conn)))
                except Exception as error:  # this job's savepoint is rolled back, the rest commit
                    if conn.invalidated:
                        raise
                    outcomes.append((False, error))
    return outcomes


class _OneFailed(Exception):
    """A job of a batch run without savepoints failed: the whole transaction was rolled back."""


def _all_at_once(db_engine: DbEngine, jobs: list[Job]) -> list[Any]:
    """Bulk jobs of one kind in one durable transaction without a savepoint; each one's result.

    `_OneFailed` if one of them failed (the transaction is rolled back); a lost connection, or
    an error of the commit itself, passes through, as `run_durably`'s does.
    """
    with durable(db_engine) as conn:
        try:
            return type(jobs[0]).run_many(conn, jobs)  # type: ignore[attr-defined,no-any-return]
        except Exception as error:
            if conn.invalidated:
                raise
            raise _OneFailed from error


def _runs(jobs: list[Job]) -> list[list[Job]]:
    """Consecutive jobs of the same class, grouped, in order."""
    runs: list[list[Job]] = []
    for job in jobs:
        if runs and type(runs[-1][0]) is type(job):
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs
