"""Inserting rows that may be there already: INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL.

A repeated signup, event or queued email must change nothing twice; the unique keys say
what "the same row" is, and these skip a row that would break one instead of failing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from engine.store.manyrows import by_columns, execute_many


def on_conflict_dialect(conn: Connection) -> ModuleType:
    """The dialect module whose insert() writes ON CONFLICT for this connection's database.

    PostgreSQL's is imported only for a PostgreSQL database: importing it takes 25 ms here
    (its types, catalog and asyncpg modules), which a command on SQLite (`funnel subscribers
    show`) would pay for nothing.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    return sqlite


def insert_ignoring_conflicts(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], unique: Sequence[str]
) -> int:
    """Insert rows; a row that would break the unique key `unique` is skipped. Returns rows inserted.

    The rows go through manyrows.execute_many, those that set the same columns together: many
    VALUES rows a statement on SQLite, one INSERT ... SELECT FROM unnest(binary arrays) on
    PostgreSQL. A skipped row counts 0 in the driver's rowcount, on both.
    """
    dialect = on_conflict_dialect(conn)
    return sum(execute_many(conn, _ignoring(dialect, table, columns, tuple(unique)), group)
               for columns, group in by_columns(rows).items())


@functools.cache
def _ignoring(
    dialect: ModuleType, table: sa.Table, columns: tuple[str, ...], unique: tuple[str, ...]
) -> sa.Insert:
    """The INSERT of one row of `columns`, skipping it when the unique key `unique` holds one:
    built once per shape, as execute_many keeps a statement's compiled form by the object."""
    values: dict[str, Any] = {name: sa.bindparam(name) for name in columns}
    statement = dialect.insert(table).values(values)
    return statement.on_conflict_do_nothing(index_elements=list(unique))  # type: ignore[no-any-return]


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
    dialect = on_conflict_dialect(conn)
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique))
    return [tuple(r) for r in conn.execute(statement.returning(*returning), [dict(r) for r in rows])]
