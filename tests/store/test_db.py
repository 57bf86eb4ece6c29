"""Opening databases: `funnel db upgrade`, durable commits, and what an unreachable server says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli import main
from engine.store import db
from engine.store.db import DatabaseError, _check_sqlite_version, durable, make_engine
from engine.store.migrate import head_revision
from tests.support.databases import empty_postgres_database
from tests.support.outage import end_connections


def test_db_upgrade_creates_the_sqlite_file_then_says_it_is_up_to_date(tmp_path: Path) -> None:
    env = {"FUNNEL_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    first = CliRunner().invoke(main, ["--project", str(tmp_path), "db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert f"upgraded from revision none (empty) to {head_revision()}" in first.output
    again = CliRunner().invoke(main, ["--project", str(tmp_path), "db", "upgrade"], env=env)
    assert again.exit_code == 0 and f"is up to date (revision {head_revision()}" in again.output


def test_db_upgrade_on_a_fresh_postgresql_database(tmp_path: Path) -> None:
    with empty_postgres_database() as url:
        env = {"FUNNEL_DATABASE_URL": url}
        result = CliRunner().invoke(main, ["--project", str(tmp_path), "db", "upgrade"], env=env)
        assert result.exit_code == 0, result.output
        assert "upgraded from revision none (empty)" in result.output
        name = sa.engine.make_url(url).database
        assert name and name in result.output and "postgres@" not in result.output


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {"FUNNEL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "db", "upgrade"], env=env)
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output
    assert "check FUNNEL_DATABASE_URL and that the server runs" in result.output


def test_a_durable_commit_is_fully_synced_and_the_connection_goes_back_to_normal(tmp_path: Path) -> None:
    db_engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}", poolclass=sa.pool.StaticPool)
    with durable(db_engine) as conn:
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar_one() == 2  # FULL
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL
    db_engine.dispose()


def test_a_sqlite_library_too_old_for_the_store_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError) as raised:
        _check_sqlite_version((3, 31, 1))
    assert str(raised.value).startswith(
        "SQLite 3.35 or later is needed; this Python's sqlite3 module uses 3.31.1")
    assert "or use PostgreSQL" in str(raised.value)
    _check_sqlite_version((3, 35, 0))  # enough
    _check_sqlite_version()  # this machine's


def _backend_pid(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def one_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[sa.Engine, list[object]]]:
    """An engine on a fresh PostgreSQL database with a pool of one connection, and its pings."""
    with empty_postgres_database() as url:
        db_engine = make_engine(url, pool_size=1, max_overflow=0)
        pings: list[object] = []
        real = db_engine.dialect.do_ping

        def do_ping(dbapi_connection: object) -> bool:
            pings.append(dbapi_connection)
            return real(dbapi_connection)

        monkeypatch.setattr(db_engine.dialect, "do_ping", do_ping)
        yield db_engine, pings
        db_engine.dispose()


def test_a_postgresql_connection_used_a_moment_ago_is_not_pinged_an_idle_one_is(
    monkeypatch: pytest.MonkeyPatch, one_connection: tuple[sa.Engine, list[object]],
) -> None:
    db_engine, pings = one_connection
    for _ in range(5):  # a tick's burst of short transactions: no round trip before each
        with db_engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    time.sleep(0.1)
    with db_engine.begin() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert len(pings) == 1


def test_an_idle_postgresql_connection_the_server_dropped_is_replaced_before_use(
    monkeypatch: pytest.MonkeyPatch, one_connection: tuple[sa.Engine, list[object]],
) -> None:
    db_engine, pings = one_connection
    with db_engine.connect() as conn:
        first = _backend_pid(conn)
    assert end_connections(db_engine.url) == 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    time.sleep(0.1)
    with db_engine.begin() as conn:  # the ping finds it dead; the pool connects afresh
        again = _backend_pid(conn)
    assert again != first
    assert len(pings) == 1


def test_a_postgresql_connection_dropped_within_the_moment_fails_once_then_the_pool_recovers(
    one_connection: tuple[sa.Engine, list[object]],
) -> None:
    db_engine, pings = one_connection
    with db_engine.connect() as conn:
        first = _backend_pid(conn)
    assert end_connections(db_engine.url) == 1
    # Unpinged, as a statement after a ping could meet it too: an OperationalError, which
    # the tick logs as tick_failed and a signup answers with 503 (the callers' tests) ...
    with pytest.raises(sa.exc.OperationalError) as raised, db_engine.connect() as conn:
        _backend_pid(conn)
    assert raised.value.connection_invalidated and pings == []
    with db_engine.connect() as conn:  # ... and the next transaction has a new connection
        assert _backend_pid(conn) != first
