"""Inserting many rows, most of them rows that may be there already: INSERT ... ON CONFLICT DO
NOTHING, on SQLite and PostgreSQL, through manyrows.

A repeated signup, event or queued email must change nothing twice; the unique keys say
what "the same row" is, and these skip a row that would break one instead of failing.
`insert_rows` is the plain INSERT of the same path, for a table without such a key (the
consent records).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from engine.store.manyrows import by_columns, execute_many, fetch_many


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
    `returning` columns (in any order).

    As insert_ignoring_conflicts, through manyrows (fetch_many): SQLAlchemy's own executemany
    with RETURNING built each row's parameters through its compiled statement, about a third
    of the web writer's time for a group of signups (docs/benchmarks.md).
    """
    dialect = on_conflict_dialect(conn)
    found: list[tuple[Any, ...]] = []
    for columns, group in by_columns(rows).items():
        statement = _returning(dialect, table, columns, tuple(unique), tuple(returning))
        found.extend(fetch_many(conn, statement, group))
    return found


@functools.cache
def _returning(
    dialect: ModuleType, table: sa.Table, columns: tuple[str, ...], unique: tuple[str, ...],
    returning: tuple[sa.Column[Any], ...],
) -> sa.Insert:
    """`_ignoring`'s INSERT returning `returning` of each row it inserts."""
    return _ignoring(dialect, table, columns, unique).returning(*returning)


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows into a table without a unique key of their own to skip by (consent records)."""
    for columns, group in by_columns(rows).items():
        execute_many(conn, _plain(table, columns), group)


@functools.cache
def _plain(table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
    """The INSERT of one row of `columns`, built once per shape."""
    return sa.insert(table).values({name: sa.bindparam(name) for name in columns})
