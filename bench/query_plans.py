"""The plans of the statements the engine runs: EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL.

The statements are caught as SQLAlchemy sends them (`before_cursor_execute`), with their
parameters, so the plan is that of the very SQL the engine's function ran, not of a copy of
its query written out by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from engine.store.db import DbEngine


def statements_of(db_engine: DbEngine, run: Callable[[], Any]) -> list[tuple[str, Any]]:
    """Every (SQL, parameters) that `run()` sent through `db_engine`."""
    caught: list[tuple[str, Any]] = []

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if not many:
            caught.append((statement, parameters))

    sa.event.listen(db_engine, "before_cursor_execute", catch)
    try:
        run()
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", catch)
    return caught


def plan_of(db_engine: DbEngine, statement: str, parameters: Any) -> list[str]:
    """The database's plan for one caught statement, a line per step."""
    sqlite = db_engine.dialect.name == "sqlite"
    raw = db_engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
        rows = cursor.fetchall()
        raw.rollback()
    finally:
        raw.close()
    if sqlite:  # (id, parent, notused, detail): indent each step under its parent
        depth: dict[int, int] = {0: 0}
        lines = []
        for step, parent, _unused, detail in rows:
            depth[step] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[step] - 1) + str(detail))
        return lines
    return [str(row[0]) for row in rows]
