"""The database engine: SQLite by default (WAL, a busy timeout), PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from engine.errors import EngineError

# The names the layers above the store use for what it hands them: they pass a
# database and its connections around and read result rows, but never import
# SQLAlchemy themselves (the import-linter contract "only the store runs SQL").
DbEngine = Engine
DbConnection = Connection
Row = RowMapping

# A writer waits this long for another one (a CLI command beside the daemon) before
# SQLite answers "database is locked"; our own write transactions last milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# The key in a SQLite connection's `info` that remembers its PRAGMA query_only.
_QUERY_ONLY = "funnel_query_only"
# A pooled PostgreSQL connection back in the pool for longer than this is pinged before it is
# handed out again (one round trip); one used this recently is not (_ping_when_idle). Short
# enough that a page read after a pause (a person clicks) is pinged, and a tick's connection
# between ticks; long enough that a burst of transactions a few milliseconds apart is not.
PING_AFTER_IDLE_SECONDS = 0.25
# The key in a pooled connection's `info`: when it went back into the pool (time.monotonic()).
_CHECKED_IN = "funnel_checked_in"


class DatabaseError(EngineError):
    """The database cannot be reached or used; check FUNNEL_DATABASE_URL and that the server runs."""


class Unavailable(Exception):
    """The database could not be read or written just now: the caller answers 503 and changes nothing."""


class ConnectionLost(sa.exc.SQLAlchemyError):
    """The connection to the database was lost before a transaction's commit: none of it was written.

    Raised by `transaction` and `durable`; `once_more_if_lost` runs such a transaction again.
    """


# What a database that is down, locked or cut off raises: callers that answer a person
# turn these into `Unavailable`.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError,
                                                   ConnectionLost)
# Anything the database or its driver raised (down, locked, slow, refused): the pages that
# keep answering while the database is away (/healthz, /metrics, a click) catch this.
DbError = sa.exc.SQLAlchemyError


def normalize_url(url: str) -> str:
    """The URL with PostgreSQL pointed at psycopg 3 (SQLAlchemy's default driver is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **options: Any) -> Engine:
    """A SQLAlchemy engine for `url`, set up for the engine's workload."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        _check_sqlite_version()
        db_engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **options)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, busy_timeout_ms)

        sa.event.listen(db_engine, "connect", on_connect)
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over
        # (SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional DDL"): reads
        # begin DEFERRED and read-only, writes IMMEDIATE (_sqlite_begin).
        db_engine._connection_cls = _SqliteConnection
        sa.event.listen(db_engine, "begin", _sqlite_begin)
        return db_engine
    if url.startswith("postgresql"):
        db_engine = sa.create_engine(url, **options)
        _ping_when_idle(db_engine)
        return db_engine
    raise DatabaseError(
        f"unsupported database URL '{url.split(':', 1)[0]}:...'; "
        "use sqlite:///path/to/file.db or postgresql://user@host/dbname"
    )


def _ping_when_idle(db_engine: Engine) -> None:
    """Ping a pooled connection before use when it sat in the pool for PING_AFTER_IDLE_SECONDS.

    SQLAlchemy's `pool_pre_ping` pings at every checkout: a round trip before every transaction,
    which in a tick's burst of short transactions (an outcome commit every few milliseconds) is
    one wait for the server in five. A connection that was used a moment ago is alive unless the
    server went away in that moment, which a statement can meet just as well after a ping (the
    callers handle both the same way: the tick fails and the next one runs; the web side's
    writes run once more on a new connection, store/jobs.py).
    One idle for longer (the tick's between ticks, the dashboard's between pages, every one after
    a server restart) is pinged as `pool_pre_ping` would: a dead one invalidates the pool and the
    pool connects afresh (SQLAlchemy, "Disconnect Handling - Pessimistic", custom ping).
    """
    dialect = db_engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)  # none: a new connection (info goes with the old one)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise sa.exc.InvalidatePoolError() from error
            raise

    sa.event.listen(db_engine, "checkin", checked_in)
    sa.event.listen(db_engine, "checkout", checkout)


# What the store's SQL needs of SQLite: UPDATE ... FROM (3.33, manyrows.py), RETURNING and
# DROP COLUMN (3.35, the queries and the migrations).
SQLITE_NEEDED = (3, 35)


def _check_sqlite_version(version: tuple[int, ...] | None = None) -> None:
    """DatabaseError, saying what to do, when Python's SQLite library is too old for the store."""
    found = version or sqlite3.sqlite_version_info
    if tuple(found[:2]) < SQLITE_NEEDED:
        raise DatabaseError(
            f"SQLite {'.'.join(map(str, SQLITE_NEEDED))} or later is needed; this Python's sqlite3 module "
            f"uses {'.'.join(map(str, found))}: run funnel with a Python built against a newer "
            "libsqlite3 (docs/deploy.md), or use PostgreSQL (FUNNEL_DATABASE_URL=postgresql://...)"
        )


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers (the CLI, the web side) never block the writer, nor it them.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    # NORMAL in WAL mode survives a killed process; only a power cut can lose the last
    # commits. Signups and unsubscribes use durable() to survive that too.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _SqliteConnection(Connection):
    """A SQLite connection that tells `_sqlite_begin` which transactions SQLAlchemy began by itself.

    SQLAlchemy begins a transaction on its own (autobegin) at the first statement on a
    `db_engine.connect()` that did not call `begin()`: those are the reads. A transaction
    asked for, by `db_engine.begin()`, `conn.begin()` or `durable()`, is a write.
    `_connection_cls` and `_autobegin` are SQLAlchemy's own (2.0 to 2.1); should they change,
    every transaction falls back to a write, which is safe, and tests/store/test_read_locks.py
    fails.
    """

    autobegun = False

    def _autobegin(self) -> None:
        self.autobegun = True
        try:
            super()._autobegin()
        finally:
            self.autobegun = False


def _sqlite_begin(conn: Connection) -> None:
    # A read (autobegun on `db_engine.connect()`) begins DEFERRED: in WAL mode it takes no
    # lock a writer waits for and sees one moment until it ends, so a 30 s report beside the daemon
    # holds back neither a tick nor a signup. query_only makes a write in it fail at once
    # ("attempt to write a readonly database") instead of sometimes, under load, failing
    # with SQLITE_BUSY when the read lock cannot be upgraded: writes use `db_engine.begin()`.
    # A write begins IMMEDIATE: it takes the write lock at BEGIN, so two writers queue on
    # busy_timeout instead of one failing with "database is locked" on the upgrade.
    reading = getattr(conn, "autobegun", False)
    if conn.info.get(_QUERY_ONLY) is not reading:
        # On the driver connection: a setting of the connection, not a statement of the work.
        raw = conn.connection.driver_connection
        assert raw is not None  # a connection beginning a transaction has one
        raw.execute(f"PRAGMA query_only={int(reading)}")
        conn.info[_QUERY_ONLY] = reading
    conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


@contextmanager
def durable(db_engine: Engine) -> Iterator[Connection]:
    """A transaction whose commit survives a power cut (SQLite: synchronous=FULL for it)."""
    with db_engine.connect() as conn:
        # On the driver connection: a statement through `conn` would begin the transaction.
        raw = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA synchronous=FULL")
        try:
            with conn.begin(), _lost_is_named(conn):
                yield conn
        finally:
            if raw is not None:
                raw.execute("PRAGMA synchronous=NORMAL")


@contextmanager
def transaction(db_engine: Engine) -> Iterator[Connection]:
    """`db_engine.begin()`, where an error that lost the connection is `ConnectionLost`."""
    with db_engine.begin() as conn, _lost_is_named(conn):
        yield conn


@contextmanager
def _lost_is_named(conn: Connection) -> Iterator[None]:
    """An error raised inside the transaction after which the connection is gone: `ConnectionLost`.

    Raised before the commit: nothing of the transaction was written, and the pool connects
    afresh, so the caller may run it again (`once_more_if_lost`). An error of the commit itself
    is outside this and passes through as it is (the commit may have been done).
    """
    try:
        yield
    except ConnectionLost:
        raise
    except Exception as error:
        if conn.invalidated:
            raise ConnectionLost(str(error)) from error
        raise


T = TypeVar("T")


def once_more_if_lost(run: Callable[[], T]) -> T:
    """`run()`, a transaction; once more if it raised `ConnectionLost`, which passes through the second time.

    A pooled PostgreSQL connection used a moment ago is not pinged (`_ping_when_idle`): one the
    server dropped meanwhile shows at the transaction's first statement, with nothing written.
    """
    try:
        return run()
    except ConnectionLost:
        return run()


def shown_url(database: Engine | str) -> str:
    """The database URL (of an engine, or as the operator wrote it) with the password hidden."""
    url = sa.engine.make_url(database) if isinstance(database, str) else database.url
    return url.render_as_string(hide_password=True)


def not_created_yet(url: str) -> bool:
    """Whether `url` is a SQLite file that does not exist yet: connecting would create it, empty."""
    parsed = sa.engine.make_url(url)
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) \
        and parsed.database != ":memory:" and not Path(str(parsed.database)).exists()


def ping(db_engine: Engine) -> None:
    """Run the smallest statement there is; raises DbError when the database does not answer."""
    with db_engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


@contextmanager
def snapshot(db_engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one moment, so that the numbers add up with each other."""
    with db_engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # READ COMMITTED would let a tick commit between two of the report's statements.
            with conn.execution_options(isolation_level="REPEATABLE READ").begin():
                yield conn
            return
        # SQLite: the read transaction autobegun at the first statement sees one moment (WAL)
        # until the connection closes, and takes no lock (_sqlite_begin).
        yield conn


def check_connection(db_engine: Engine) -> None:
    """Raise DatabaseError with the server's reason when the database cannot be reached."""
    try:
        ping(db_engine)
    except sa.exc.OperationalError as error:
        raise DatabaseError(
            f"cannot reach the database: {error.orig}; check FUNNEL_DATABASE_URL and that the server runs"
        ) from error
