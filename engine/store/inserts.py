"""Inserting rows that may be there already: INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL.

A repeated signup, event or queued email must change nothing twice; the unique keys say
what "the same row" is, and these skip a row that would break one instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql


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
    """Insert rows; a row that would break the unique key `unique` is skipped. Returns rows inserted."""
    if not rows:
        return 0
    dialect = on_conflict_dialect(conn)
    key = next(iter(table.primary_key.columns))
    if conn.dialect.name == "postgresql" and len(rows) > 1 and _arrays_can_carry(table, rows[0]):
        return len(conn.execute(_unnest_insert(table, rows, unique).returning(key)).all())
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique)).returning(key)
    # rowcount is not reliable for batched inserts on every driver; counting RETURNING rows is.
    if len(rows) == 1:
        return len(conn.execute(statement, dict(rows[0])).all())
    return len(conn.execute(statement, list(rows)).all())


def _arrays_can_carry(table: sa.Table, row: Mapping[str, Any]) -> bool:
    """Whether every column of `row` can travel as a PostgreSQL array (JSON ones are left out)."""
    return not any(isinstance(table.c[name].type, sa.JSON) for name in row)


def _unnest_insert(
    table: sa.Table, rows: Sequence[Mapping[str, Any]], unique: Sequence[str]
) -> postgresql.Insert:
    """INSERT ... SELECT FROM unnest(one array per column) ON CONFLICT DO NOTHING, on PostgreSQL.

    One short statement whatever the number of rows. The multi-row VALUES that SQLAlchemy
    writes otherwise (insertmanyvalues) is parsed by psycopg in Python: 418 KB of SQL for
    1,000 queued emails, 117 ms for 3,000, about 39 µs an email of the deciding tick.
    """
    from sqlalchemy.dialects import postgresql

    names = list(rows[0])
    arrays = [sa.bindparam(f"unnest_{name}", [row[name] for row in rows],
                           type_=postgresql.ARRAY(table.c[name].type)) for name in names]
    source = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    chosen = sa.select(*(source.c[name] for name in names))
    statement = postgresql.insert(table).from_select(names, chosen)
    return statement.on_conflict_do_nothing(index_elements=list(unique))


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
