"""The tables' schema, pinned: the DDL each database gets and the defaults inserts fill in.

The tables were SQLModel classes until they became Core `Table`s (issue 14: defining them
through SQLModel cost each process 0.15 s). tests/data/schema/tables.txt was written from the
SQLModel classes (`python -m tests.store.test_tables > tests/data/schema/tables.txt`, run on
273c6d4): this test fails if the Core tables make a different schema, a different
client-side default or a different column order. A deliberate change to the schema (with its
migration) rewrites the file the same way.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from engine.store.tables import METADATA

GOLDEN = Path(__file__).parent.parent / "data" / "schema" / "tables.txt"


def _default(column: sa.Column[object]) -> str:
    """What an insert fills in when the column is not given (Python side), and the server's default."""
    default = column.default
    given = "-" if default is None else repr(getattr(default, "arg", default))
    server = "-" if column.server_default is None else str(getattr(column.server_default, "arg", "?"))
    return f"{column.name}: default {given}, server default {server}"


def schema_text(metadata: sa.MetaData) -> str:
    """Every table in order: its columns' defaults, then its DDL and indexes on SQLite and PostgreSQL."""
    lines = [f"tables: {', '.join(metadata.tables)}",
             f"creation order: {', '.join(t.name for t in metadata.sorted_tables)}"]
    for table in metadata.tables.values():
        lines.append(f"\n-- {table.name}")
        lines.extend(_default(column) for column in table.columns)
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            lines.append(str(CreateTable(table).compile(dialect=dialect)).strip())
            lines.extend(str(CreateIndex(index).compile(dialect=dialect)).strip()
                         for index in sorted(table.indexes, key=lambda index: str(index.name)))
    return "\n".join(line.rstrip() for text in lines for line in text.splitlines()) + "\n"


def test_the_tables_make_the_schema_pinned() -> None:
    assert schema_text(METADATA) == GOLDEN.read_text(encoding="utf-8")


if __name__ == "__main__":
    print(schema_text(METADATA), end="")
