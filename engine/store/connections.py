"""How the layers above hold the database: a ping, a read that sees one moment, the errors to catch.

The web side and /metrics keep answering while the database is down or locked; they
catch these errors by the names here, without importing SQLAlchemy (only the store does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

# Anything the database or its driver raised: down, locked, slow, refused.
DbError = sa.exc.SQLAlchemyError
# The database cannot be reached or used right now (down, locked, cut off).
DbUnavailable = sa.exc.OperationalError


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
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        # SQLite: every transaction here begins IMMEDIATE (store/db.py), one writer-free moment.
        with conn.begin():
            yield conn
