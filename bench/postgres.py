"""Throwaway PostgreSQL databases for the benchmarks, on the server at 127.0.0.1:5432 (user postgres)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from engine.store.db import make_engine

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def create_database(prefix: str, name: str | None = None) -> str:
    """A new empty database named `name` (else `prefix` and a random part): its URL.

    Exits with what to do when the server cannot be reached.
    """
    name = name or f"{prefix}{uuid.uuid4().hex[:8]}"
    admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        raise SystemExit(f"cannot create a database at {ADMIN_URL}: {error.orig}; start PostgreSQL "
                         "there (user postgres, trust authentication) or use --database sqlite") from error
    finally:
        admin.dispose()
    return sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database `url` names, closing its connections."""
    name = sa.engine.make_url(url).database or ""
    admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
