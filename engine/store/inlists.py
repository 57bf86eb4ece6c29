"""A batch's ids in a WHERE: `column IN (...)` on SQLite, `column = ANY(array)` on PostgreSQL.

The tick reads and writes by the ids of a batch of a thousand: the claimed enrollments'
subscribers, the claimed deliveries, their address hashes. SQLAlchemy writes `IN` with
one parameter per value, which on PostgreSQL costs the engine, per value, the parameter's
name and cast written into the SQL, psycopg's parsing of that long text again at every
execution (it caches only short queries), and the server a statement it has never seen;
`= ANY(%(ids)s)` is one parameter, an array, in a short text psycopg and the server keep
prepared. SQLite has no arrays; its `IN` with one `?` per value is parsed in C.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def one_of_parameter(dialect: str, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """`column IN :name` for a statement built once and run with many lists (`name` given at each
    execution): an expanding parameter on SQLite, one array on PostgreSQL."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=sa.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def one_of(conn: Connection, column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column IN values`, as the connection's database reads it fastest (empty: true of no row)."""
    wanted = list(values)
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, wanted, type_=sa.ARRAY(column.type)))
    return column.in_(wanted)
