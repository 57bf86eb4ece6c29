"""Inserting rows that may be there already: INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL.

A repeated signup, event or queued email must change nothing twice; the unique keys say
what "the same row" is, and these skip a row that would break one instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignoring_conflicts(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], unique: Sequence[str]
) -> int:
    """Insert rows; a row that would break the unique key `unique` is skipped. Returns rows inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique)).returning(key)
    # rowcount is not reliable for batched inserts on every driver; counting RETURNING rows is.
    if len(rows) == 1:
        return len(conn.execute(statement, dict(rows[0])).all())
    return len(conn.execute(statement, list(rows)).all())


def insert_new(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    unique: Sequence[str],
    returning: Sequence[sa.Column[Any]],
) -> list[tuple[Any, ...]]:
    """Insert rows, skipping those that would break the unique key `unique`; the inserted rows'
    `returning` columns (in any order)."""
    if not rows:
        return []
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique))
    return [tuple(r) for r in conn.execute(statement.returning(*returning), [dict(r) for r in rows])]
