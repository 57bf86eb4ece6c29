"""Test databases: a SQLite file, and a fresh PostgreSQL database per test (from a template).

PostgreSQL is found at FUNNEL_TEST_DATABASE_URL (default: postgresql://postgres@127.0.0.1:5432/postgres).
Each pytest process (each pytest-xdist worker, `-n auto`) migrates its own template database and
copies it per test; every name carries the worker (PYTEST_XDIST_WORKER, `main` without xdist) and
a random part, so workers, and several test runs sharing one server, never meet on a database.
When it cannot be reached, PostgreSQL tests skip with the reason, unless
FUNNEL_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.store.db import make_engine
from engine.store.migrate import upgrade

ADMIN_URL = os.environ.get("FUNNEL_TEST_DATABASE_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_template: str | None = None


def _worker() -> str:
    """This process's pytest-xdist worker ('gw0', 'gw1', ...), or 'main' when not under xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _admin() -> Engine:
    return make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        admin = _admin()
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        admin.dispose()
    except Exception as error:  # any driver or network failure means "not here"
        return f"PostgreSQL not reachable at {ADMIN_URL}: {type(error).__name__}"
    return None


def require_postgres() -> None:
    """Skip (or, in CI, fail) when there is no PostgreSQL to test against."""
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("FUNNEL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason}; FUNNEL_REQUIRE_POSTGRES=1 says it must be there")
    pytest.skip(f"{reason}; set FUNNEL_TEST_DATABASE_URL to run the PostgreSQL tests")


def _url_for(name: str) -> str:
    return sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _ensure_template() -> str:
    """A migrated database to copy: CREATE DATABASE ... TEMPLATE is much faster than migrating."""
    global _template
    if _template is None:
        name = f"funnel_template_{_worker()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = _admin()
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        db_engine = make_engine(_url_for(name))
        upgrade(db_engine)
        db_engine.dispose()
        _template = name
    return _template


def drop_template() -> None:
    """Drop this process's template database (at the end of its session: each xdist worker's own)."""
    global _template
    if _template is not None:
        admin = _admin()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)'))
        admin.dispose()
        _template = None


@contextmanager
def _created(template: str | None) -> Iterator[str]:
    """Create a database of this worker's (a copy of `template`, or empty), yield its URL, drop it."""
    name = f"funnel_test_{_worker()}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield _url_for(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database, dropped afterwards."""
    require_postgres()
    with _created(_ensure_template()) as url:
        yield url


@contextmanager
def empty_postgres_database() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database with no tables yet (for `db upgrade`), dropped afterwards."""
    require_postgres()
    with _created(None) as url:
        yield url


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    """The URL of a fresh, migrated SQLite file."""
    url = f"sqlite:///{folder / 'funnel.db'}"
    db_engine = make_engine(url)
    upgrade(db_engine)
    db_engine.dispose()
    yield url


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh migrated database of `kind` ('sqlite' or 'postgresql')."""
    manager = postgres_database() if kind == "postgresql" else sqlite_database(folder)
    with manager as url:
        yield url


def statements_run(db_engine: Engine) -> list[str]:
    """The SQL texts db_engine's connections run from now on (the list fills as they run)."""
    ran: list[str] = []
    sa.event.listen(db_engine, "before_cursor_execute", lambda *args: ran.append(args[2]))
    return ran
