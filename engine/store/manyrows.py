"""Many rows of one statement at once: compiled once, each value converted by its type.

SQLAlchemy's own executemany builds every row's parameters through the compiled
statement's machinery (`construct_params`, then each type's processor called through
the execution context): about 6 µs a row of the tick's enrollment UPDATE and 4 µs of the
outcome UPDATE on SQLite here, beside what the database itself does. This module keeps
what matters from it, the same SQL text and the same processors (an aware datetime
written as the dialect writes it, JSON as the JSON type dumps it), and drops the rest:
the statement is compiled once per dialect and each row becomes a tuple (SQLite's `?`)
or a dict (PostgreSQL's `%(name)s`) in one pass. It runs in the caller's transaction
(`Connection.exec_driver_sql`), so what commits together is unchanged.

On SQLite the rows go in statements of many rows each (`_Batched`), not one execution
per row: an INSERT with many VALUES rows, an UPDATE joined to them (`UPDATE ... FROM
(VALUES ...)`). A table with triggers (the stats tallies' on delivery and enrollment)
makes SQLite keep a statement journal, a copy of every page the statement changes, for
each execution: one execution per row copied each of the delivery table's index pages
for every row (the queued INSERT 23.5 -> 6.7 µs a row of 3,000). And each execution
hands the interpreter lock back and forth with the event loop: the outcome UPDATE took
about 4 ms of wall time for a group of 30 while the loop was busy sending.

On PostgreSQL the rows go as one array a column, in PostgreSQL's binary form
(`_Unnested`): an INSERT selects them (`INSERT ... SELECT ... FROM unnest(%(a)b::T[], ...)
AS v(...)`), an UPDATE that names its row by `_id` is joined to them (`UPDATE ... FROM
unnest(...) AS v(...)`). One statement for the whole group, so that the delivery table's
triggers, which run once a statement over its rows (engine/store/tally_sql.py), run once,
not once a row; and psycopg dumps a list of times in binary ten times as fast as in text.
Other statements run as one DBAPI executemany (psycopg pipelines it).

`fetch_many` runs an INSERT ... RETURNING the same way and gives the rows it returned (the
signups' new subscribers and enrollments, engine/store/inserts.py `insert_new`).

Only for statements built once (module-level or cached): the compiled form is kept per
statement object.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.dml import Insert, Update

from engine.store.tables import UtcDateTime


@dataclass(frozen=True)
class _Compiled:
    """A statement as one dialect writes it, and how a row's values become its parameters."""

    sql: str
    names: tuple[str, ...]  # every parameter, in the order a positional paramstyle wants them
    positional: bool
    from_row: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # a row's own values, in C
    # Which of those a type converts, how, and whether equal values convert alike (UtcDateTime:
    # equal instants are one UTC text whatever their zone), so that each is converted once a call.
    processed: tuple[tuple[int, Callable[[Any], Any], bool], ...]
    fixed: tuple[Any, ...]  # the statement's own values, converted once
    order: Callable[[list[Any]], tuple[Any, ...]]  # (row's values + fixed ones) in the order of `names`
    batched: _Batched | None = None  # SQLite: the same statement for many rows at once
    unnested: _Unnested | None = None  # PostgreSQL: the same statement over its rows' arrays
    key: int | None = None  # which parameter names the row (an UPDATE's id): unique within a batch


@dataclass(frozen=True)
class _Batched:
    """A one-row SQLite statement written for n rows: `head`, n times `row` joined by ", ", `tail`."""

    head: str
    row: str
    tail: str
    most: int  # rows a statement at most: a power of two within the connection's parameter limit

    def sql(self, count: int) -> str:
        """The statement for `count` rows."""
        return self.head + ", ".join([self.row] * count) + self.tail


@dataclass(frozen=True)
class _Unnested:
    """A one-row PostgreSQL INSERT or UPDATE written for any number of rows: each parameter a
    row gives is one array of every row's value (`arrays`, indices into the parameters), the
    others stay one value."""

    sql: str
    arrays: frozenset[int]
    floats: frozenset[int]  # of those, the ones made floats first
    returning: str = ""  # an INSERT's " RETURNING ..." (implicit ones too), which `sql` leaves out

    def parameters(self, names: tuple[str, ...], params: list[tuple[Any, ...]]) -> dict[str, Any]:
        """The statement's parameters for these rows' (`params`, each in the order of `names`)."""
        given: dict[str, Any] = {}
        for i, (name, column) in enumerate(zip(names, zip(*params, strict=True), strict=True)):
            if i not in self.arrays:
                given[name] = column[0]  # the statement's own value, the same in every row
            elif i in self.floats:
                given[name] = [None if value is None else float(value) for value in column]
            else:
                given[name] = list(column)
        return given


_MOST_ROWS = 512  # one statement's rows: more only lengthens the SQL text SQLite parses
_compiled: dict[tuple[sa.Executable, str], _Compiled] = {}
_UNSEEN = object()


def execute_many(conn: Connection, statement: sa.Executable, rows: Sequence[Mapping[str, Any]]) -> int:
    """Run `statement` for each row; the rows it changed in all (inserted, updated).

    Each row gives the statement's bind parameters by name (those the statement does not
    give a value of its own). The count is the driver's rowcount: the rows the statements
    changed (a row an ON CONFLICT DO NOTHING skipped counts 0, a trigger's writes are not
    counted), on SQLite and psycopg alike. A batch that names one row twice
    (an UPDATE's `_id`) runs a row at a time, in order: a joined UPDATE would take either.
    """
    return sum(int(result.rowcount) for result in _executed(conn, statement, rows, returning=False))


def fetch_many(
    conn: Connection, statement: Insert, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Run an INSERT ... RETURNING for each row, as `execute_many` does; the rows it returned, in
    no set order (SQLite and PostgreSQL return a many-row INSERT's rows as they please)."""
    return [tuple(row) for result in _executed(conn, statement, rows, returning=True) for row in result]


def _executed(
    conn: Connection, statement: sa.Executable, rows: Sequence[Mapping[str, Any]], returning: bool
) -> Iterator[CursorResult[Any]]:
    """The results of running `statement` for `rows`, one per statement sent, each to be read
    before the next is sent. `returning`: the rows a RETURNING gives are wanted (a statement
    runs a row at a time where it would otherwise be one DBAPI executemany, which returns none)."""
    if not rows:
        return
    compiled = _compile(conn, statement)
    try:
        params = _converted(compiled, rows)
    except Exception as error:  # a value its type refuses (a naive time): as SQLAlchemy reports it
        raise sa.exc.StatementError(str(error), compiled.sql, None, error) from error
    batched, unnested, key = compiled.batched, compiled.unnested, compiled.key
    unique = key is None or len({values[key] for values in params}) == len(params)
    if unnested is not None and unique:
        sql = unnested.sql + unnested.returning if returning else unnested.sql
        yield conn.exec_driver_sql(sql, unnested.parameters(compiled.names, params))
    elif batched is not None and unique:
        start = 0
        while start < len(params):
            # A power of two rows a statement: a few texts a statement, each prepared once and
            # then found in the driver's cache (one with triggers takes SQLite ~0.2 ms to prepare).
            count = min(batched.most, _power_of_two(len(params) - start))
            flat = [value for values in params[start : start + count] for value in values]
            yield conn.exec_driver_sql(batched.sql(count), tuple(flat))
            start += count
    elif returning:
        for values in params:
            given = values if compiled.positional else dict(zip(compiled.names, values, strict=True))
            yield conn.exec_driver_sql(compiled.sql, given)
    elif compiled.positional:
        yield conn.exec_driver_sql(compiled.sql, params)
    else:
        yield conn.exec_driver_sql(compiled.sql, [dict(zip(compiled.names, values, strict=True))
                                                  for values in params])


def _converted(compiled: _Compiled, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's parameters, each value converted by its type, in the order of `compiled.names`."""
    from_row, processed, order = compiled.from_row, compiled.processed, compiled.order
    fixed = list(compiled.fixed)
    # The times of one batch repeat (its `now`, its wake times): each is converted once.
    memos: list[dict[Any, Any] | None] = [{} if once else None for _, _, once in processed]
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(from_row(row))
        for (i, process, _), memo in zip(processed, memos, strict=True):
            if memo is None:
                values[i] = process(values[i])
            else:
                value = values[i]
                done = memo.get(value, _UNSEEN)
                if done is _UNSEEN:
                    done = memo[value] = process(value)
                values[i] = done
        params.append(order(values + fixed))
    return params


def by_columns(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    """`rows` grouped by the columns they give, in the order first seen: one statement a group
    (a row with a column the first lacked is never written without it)."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


def _getter(indices: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """itemgetter that always gives a tuple, even of one item."""
    if len(indices) == 1:
        only = indices[0]
        return lambda source: (source[only],)
    return itemgetter(*indices)


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
    # What SQLAlchemy itself calls per value: the type as this dialect implements it (SQLite's
    # DATETIME text under UtcDateTime's conversion to naive UTC, say).
    processors = [binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    own: list[int] = []  # indices into names: given by each row
    fixed: dict[int, Any] = {}  # index into names -> the statement's own value, converted
    for i, (name, process) in enumerate(zip(names, processors, strict=True)):
        bind = binds[name]
        default = defaults.get(name)
        if default is not None:
            if not default.is_scalar:
                raise ValueError(f"execute_many cannot compute the default of column {name!r}: "
                                 "give it in each row")
            fixed[i] = default.arg if process is None else process(default.arg)
        elif bind.required:
            own.append(i)
        else:
            fixed[i] = bind.effective_value if process is None else process(bind.effective_value)
    # A row's values come first in the list `order` picks from, the fixed ones after them.
    at = {i: n for n, i in enumerate([*own, *fixed])}
    processed = tuple((n, process, isinstance(binds[names[i]].type, UtcDateTime))
                      for n, i in enumerate(own) if (process := processors[i]) is not None)
    batched, unnested, row_key = None, None, None
    if dialect.name == "sqlite":
        raw = conn.connection.driver_connection  # the most parameters a statement takes, as built
        batched, row_key = _batched(statement, compiled.string, names,
                                    raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
    elif dialect.name == "postgresql":
        # The type of each parameter as PostgreSQL names it ("VARCHAR(200)" as "VARCHAR").
        types = tuple(binds[name].type.dialect_impl(dialect).compile(dialect=dialect).split("(")[0]
                      for name in names)
        unnested, row_key = _unnested(statement, compiled.string, names, types, frozenset(own))
    found = _compiled[key] = _Compiled(
        sql=compiled.string, names=names, positional=positional,
        from_row=_getter([names[i] for i in own]) if own else (lambda row: ()),
        processed=processed, fixed=tuple(fixed.values()),
        order=_getter([at[i] for i in range(len(names))]), batched=batched, unnested=unnested, key=row_key)
    return found


def _batched(
    statement: sa.Executable, sql: str, names: tuple[str, ...], parameters: int
) -> tuple[_Batched | None, int | None]:
    """SQLite's one-row `sql` as a statement of many rows, and which parameter keys an UPDATE's row.

    An INSERT's `VALUES (?, ...)` is repeated. An UPDATE that names its row by one
    parameter (`WHERE t.id = ?`, as queries._update_statement builds them) joins the rows
    given as VALUES: each `?` of the one-row text becomes the row's column of that
    parameter (`v.column3`). None when the text is not of that shape (a `?` inside a
    literal, a subquery): such a statement runs once per row as before.
    """
    most = _power_of_two(min(_MOST_ROWS, parameters // max(1, len(names))))
    if most < 2 or sql.count("?") != len(names):
        return None, None
    placeholders = "(" + ", ".join("?" * len(names)) + ")"
    if isinstance(statement, Insert) and sql.count(" VALUES " + placeholders) == 1:
        head, tail = sql.split(" VALUES " + placeholders)
        return _Batched(head + " VALUES ", placeholders, tail, most), None
    if isinstance(statement, Update) and sql.count(" WHERE ") == 1 and "_id" in names:
        table = getattr(statement.table, "name", None)
        parts = sql.split("?")
        text = "".join(part + f"v.column{i + 1}" for i, part in enumerate(parts[:-1])) + parts[-1]
        setting, where = text.split(" WHERE ")
        if not setting.startswith(f"UPDATE {table} SET "):
            return None, None
        joined = _Batched(setting + " FROM (VALUES ", placeholders, ") AS v WHERE " + where, most)
        return joined, names.index("_id")
    return None, None


# The types an array of a row's values may have (the cast psycopg's dialect writes for each
# parameter), each sent in PostgreSQL's binary form (`%(name)b`): psycopg writes a list of
# times as text at ~4 µs an element, in binary at ~0.4. A float column's values are made floats
# first (psycopg will not put an int and a float in one binary array).
_ARRAY_TYPES = frozenset({"VARCHAR", "TEXT", "INTEGER", "BIGINT", "SMALLINT", "BOOLEAN", "FLOAT",
                          "DOUBLE PRECISION", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITHOUT TIME ZONE",
                          "JSON", "JSONB"})
_FLOATS = frozenset({"FLOAT", "DOUBLE PRECISION"})
_CAST = re.compile(r"%\((\w+)\)s::(TIMESTAMP WITH(?:OUT)? TIME ZONE|DOUBLE PRECISION|[A-Z]+)(?=[\s,)]|$)")


def _unnested(
    statement: sa.Executable, sql: str, names: tuple[str, ...], types: tuple[str, ...], own: frozenset[int]
) -> tuple[_Unnested | None, int | None]:
    """PostgreSQL's one-row `sql` for any number of rows, given as one array a column; and, for
    an UPDATE, which parameter keys a row.

    An INSERT's `VALUES (...)` becomes `SELECT ... FROM unnest(...)` (the rows in their order;
    its RETURNING, implicit or asked for, is kept apart: execute_many counts rows, fetch_many
    returns them); an UPDATE that names its row by `_id` (`UPDATE t SET ... WHERE t.id =
    %(_id)s::INTEGER ...`, as queries._update_statement builds them) is joined to the arrays.
    Each parameter must be written once, and its type (`types`, as PostgreSQL names it) be one
    of `_ARRAY_TYPES`. `own`: the indices of the parameters each row gives (the others are the
    statement's own, one value for all). None otherwise: the statement runs as an executemany.
    """
    casts = {match.group(1): match.group(2) for match in _CAST.finditer(sql)}
    if any(sql.count(f"%({name})s") != 1 or kind not in _ARRAY_TYPES
           for name, kind in zip(names, types, strict=True)):
        return None, None
    given = [names[i] for i in sorted(own)]
    arrays = ", ".join(f"%({names[i]})b::{types[i]}[]" for i in sorted(own))
    columns = ", ".join(f'"{name}"' for name in given)
    source = f"unnest({arrays}) AS v({columns})"
    floats = frozenset(i for i in own if types[i] in _FLOATS)
    table = getattr(statement.table, "name", None)  # type: ignore[attr-defined]
    for name in given:
        cast = f"::{casts[name]}" if name in casts else ""
        sql = sql.replace(f"%({name})s{cast}", f'v."{name}"')
    inserts = isinstance(statement, Insert) and sql.startswith(f"INSERT INTO {table} (")
    if inserts and sql.count(" VALUES (") == 1:
        head, rest = sql.split(" VALUES (")
        # The row's values, up to the ")" that closes them: columns of v, or the statement's own
        # (`%(name)s`, whose parentheses are masked), none an expression of its own (now()).
        masked = re.sub(r"%\(\w+\)s", lambda found: "_" * len(found.group()), rest)
        end = masked.find(")")
        if end > 0 and "(" not in masked[:end]:
            chosen, tail = rest[:end], rest[end + 1 :]
            tail, returns, returned = tail.partition(" RETURNING ")
            return _Unnested(f"{head} SELECT {chosen} FROM {source}{tail}", own, floats,
                             returns + returned), None
    if (isinstance(statement, Update) and "_id" in names and sql.count(" WHERE ") == 1
            and sql.startswith(f"UPDATE {table} SET ")):
        setting, where = sql.split(" WHERE ")
        return _Unnested(f"{setting} FROM {source} WHERE {where}", own, floats), names.index("_id")
    return None, None


def _power_of_two(count: int) -> int:
    """The largest power of two not above `count` (at least 1)."""
    return 1 << (max(1, count).bit_length() - 1)
