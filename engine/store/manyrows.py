"""Many rows through one DBAPI executemany: the statement compiled once, each value converted by its type.

SQLAlchemy's own executemany builds every row's parameters through the compiled
statement's machinery (`construct_params`, then each type's processor called through
the execution context): about 6 µs a row of the tick's enrollment UPDATE and 4 µs of the
outcome UPDATE on SQLite here, beside what the database itself does. This module keeps
what matters from it, the same SQL text and the same processors (an aware datetime
written as the dialect writes it, JSON as the JSON type dumps it), and drops the rest:
the statement is compiled once per dialect and each row becomes a tuple (SQLite's `?`)
or a dict (PostgreSQL's `%(name)s`) in one pass. It runs in the caller's transaction
(`Connection.exec_driver_sql`), so what commits together is unchanged.

Only for statements built once (module-level or cached): the compiled form is kept per
statement object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class _Compiled:
    """A statement as one dialect writes it, and how a row's values become its parameters."""

    sql: str
    names: tuple[str, ...]  # every parameter, in the order a positional paramstyle wants them
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]  # per name: its type's bind processor
    fixed: tuple[Any, ...]  # per name: the value the statement itself gives it, else _FROM_ROW


_FROM_ROW = object()  # a parameter each row gives
_compiled: dict[tuple[sa.Executable, str], _Compiled] = {}


def execute_many(conn: Connection, statement: sa.Executable, rows: Sequence[Mapping[str, Any]]) -> int:
    """Run `statement` once per row in one executemany; the rows it changed in all (inserted, updated).

    Each row gives the statement's bind parameters by name (those the statement does not
    give a value of its own). The count is the driver's rowcount: for SQLite the sum of
    each row's changes (a row an ON CONFLICT DO NOTHING skipped counts 0, a trigger's
    writes are not counted), for psycopg the same.
    """
    if not rows:
        return 0
    compiled = _compile(conn, statement)
    pairs = tuple(zip(compiled.names, compiled.processors, compiled.fixed, strict=True))
    params: list[Any]
    if compiled.positional:
        params = [tuple(_value(row, name, process, fixed) for name, process, fixed in pairs) for row in rows]
    else:
        params = [{name: _value(row, name, process, fixed) for name, process, fixed in pairs} for row in rows]
    return int(conn.exec_driver_sql(compiled.sql, params).rowcount)


def _value(row: Mapping[str, Any], name: str, process: Callable[[Any], Any] | None, fixed: Any) -> Any:
    value = row[name] if fixed is _FROM_ROW else fixed
    return value if process is None else process(value)


def _compile(conn: Connection, statement: sa.Executable) -> _Compiled:
    dialect = conn.dialect
    key = (statement, dialect.name)
    found = _compiled.get(key)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    binds = {name: bind for bind, name in compiled.bind_names.items()}  # as the SQL text names them
    positional = bool(compiled.positional)
    names = tuple(compiled.positiontup if positional else binds)
    # A column left out of an INSERT gets its default, which SQLAlchemy computes per execution.
    prefetched = (*compiled.insert_prefetch, *compiled.update_prefetch)
    defaults = {column.key: column.default for column in prefetched}
    fixed: list[Any] = []
    for name in names:
        default = defaults.get(name)
        if default is not None:
            if not default.is_scalar:
                raise ValueError(f"execute_many cannot compute the default of column {name!r}: "
                                 "give it in each row")
            fixed.append(default.arg)
        else:
            fixed.append(_FROM_ROW if binds[name].required else binds[name].effective_value)
    # What SQLAlchemy itself calls per value: the type as this dialect implements it (SQLite's
    # DATETIME text under UtcDateTime's conversion to naive UTC, say).
    processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    found = _compiled[key] = _Compiled(compiled.string, names, positional, processors, tuple(fixed))
    return found
