"""A database that is down, for tests of what the app answers then (503s, missing gauges)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from engine.store.db import make_engine
from tests.support.databases import ADMIN_URL


@contextmanager
def database_down(url: str) -> Iterator[None]:
    """SQLite: another process holds the file in exclusive mode. PostgreSQL: refuses connections."""
    if url.startswith("sqlite"):
        locker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
        # A tool holding the file to itself: in WAL mode a writer does not keep reads out (they
        # take no lock), an exclusive locking mode does, once no other connection is open.
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        locker.execute("CREATE TABLE IF NOT EXISTS _lock (x INTEGER)")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    name = sa.engine.make_url(url).database
    admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        end_connections(url)
        try:
            yield
        finally:  # a failed test must not leave the database closed to its own teardown
            with admin.connect() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()


def end_connections(url: str | sa.URL) -> int:
    """PostgreSQL ends every open connection to the database at `url`, as a restart or
    `pg_terminate_backend` does (the pools holding them do not know yet); how many it ended."""
    admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return int(conn.execute(
                sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"),
                {"name": sa.engine.make_url(url).database}).scalar_one())
    finally:
        admin.dispose()
