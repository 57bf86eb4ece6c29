"""Writing `bench.scale_people` rows fast: SQLite by executemany in big transactions, PostgreSQL by COPY.

The schema is the engine's own (engine/store/migrate.py upgrade); only the rows skip the
engine's statements. The plain indexes are dropped for the load and made again at the end
(one sort each instead of a random insert per row); the unique ones, which the tables'
definitions carry, stay. Foreign keys are not checked while loading (the rows are made
consistent): SQLite's are off by default, PostgreSQL's triggers are skipped with
session_replication_role = replica, which needs the superuser the benchmark runs as.

Times arrive as whole epoch seconds and leave as each database stores them: SQLAlchemy's
SQLite text ('2026-03-02 09:00:00.000000', UTC) and a PostgreSQL timestamptz. Ids are
given; PostgreSQL's sequences are moved past them after.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from bench.scale_people import Release, Rows

COLUMNS = {
    "subscriber": ("id", "email", "email_key", "name", "first_name", "last_name", "locale", "timezone",
                   "status", "fields", "source", "utm_source", "utm_medium", "utm_campaign", "utm_term",
                   "utm_content", "created_at", "updated_at"),
    "consent": ("id", "subscriber_id", "kind", "at", "funnel", "form", "ip", "user_agent", "wording"),
    "enrollment": ("id", "subscriber_id", "funnel", "magnet", "stage", "since", "segment", "step",
                   "last_sent_at", "deadline", "done", "reason", "resume_stage", "resume_step", "next_run_at",
                   "created_at", "updated_at"),
    "delivery": ("id", "enrollment_id", "subscriber_id", "funnel", "step", "segment", "marketing",
                 "message_id", "status", "attempts", "last_code", "last_reply", "created_at",
                 "next_attempt_at", "sent_at", "first_attempt_at", "updated_at", "release"),
    "event": ("id", "subscriber_id", "funnel", "type", "at", "question", "answer", "product", "name",
              "amount", "currency", "external_id", "step", "data"),
    "milestone": ("id", "enrollment_id", "subscriber_id", "funnel", "stage", "at"),
    "suppression": ("id", "email_hash", "reason", "detail", "at"),
}
# Parents first: foreign keys hold at every commit.
ORDER = ("subscriber", "consent", "enrollment", "delivery", "event", "milestone", "suppression")
_TIMES = {"created_at", "updated_at", "at", "since", "last_sent_at", "deadline", "next_run_at",
          "next_attempt_at", "sent_at", "first_attempt_at"}
_JSON = {"fields", "done", "data"}


class Loader(Protocol):
    """Where generated rows go."""

    def write(self, rows: Rows) -> int:
        """Write one batch of rows; how many."""
        ...

    def close(self) -> None:
        """Commit, finish (indexes statistics, sequences) and disconnect."""
        ...


def _stamp(suffix: str) -> Callable[[int | None], str | None]:
    """Epoch seconds -> the database's text for it; a day's date is formatted once."""
    days: dict[int, str] = {}

    def stamp(value: int | None) -> str | None:
        if value is None:
            return None
        day, second = divmod(value, 86_400)
        date = days.get(day)
        if date is None:
            date = days[day] = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
        hour, second = divmod(second, 3600)
        minute, second = divmod(second, 60)
        return f"{date} {hour:02d}:{minute:02d}:{second:02d}.000000{suffix}"

    return stamp


Converters = list[tuple[int, Callable[[Any], Any]]]


def _converters(table: str, stamp: Callable[[int | None], str | None]) -> Converters:
    """(column index, converter) for the columns that are not stored as given."""
    found: Converters = []
    for index, name in enumerate(COLUMNS[table]):
        if name in _TIMES:
            found.append((index, stamp))
        elif name in _JSON:
            found.append((index, lambda v: json.dumps(v)))
    return found


def _convert(rows: Sequence[tuple[Any, ...]], converters: Converters) -> list[list[Any]]:
    out = []
    for row in rows:
        values = list(row)
        for index, convert in converters:
            values[index] = convert(values[index])
        out.append(values)
    return out


class SqliteLoader:
    """executemany into a file opened with bulk-load pragmas; one transaction per batch."""

    def __init__(self, path: str, releases: Sequence[Release]) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY",
                       "foreign_keys=OFF", "locking_mode=EXCLUSIVE"):
            self.conn.execute(f"PRAGMA {pragma}")
        stamp = _stamp("")
        self.converters = {table: _converters(table, stamp) for table in ORDER}
        self.statements = {
            table: f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for table, cols in COLUMNS.items()
        }
        self.conn.executemany(
            "INSERT INTO release (id, hash, went_live_at, summary) VALUES (?, ?, ?, '{}')",
            [(r.id, r.hash, stamp(r.went_live_at)) for r in releases])
        tables = ", ".join(f"'{t}'" for t in ORDER)
        self.indexes = self.conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({tables})").fetchall()
        for name, _ in self.indexes:
            self.conn.execute(f'DROP INDEX "{name}"')

    def write(self, rows: Rows) -> int:
        count = 0
        self.conn.execute("BEGIN")
        for table in ORDER:
            batch = getattr(rows, table)
            self.conn.executemany(self.statements[table], _convert(batch, self.converters[table]))
            count += len(batch)
        self.conn.execute("COMMIT")
        return count

    def close(self) -> None:
        for _, sql in self.indexes:
            self.conn.execute(sql)
        # The engine opens it in WAL mode (engine/store/db.py); leave it as a daemon would.
        self.conn.execute("PRAGMA locking_mode=NORMAL")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.close()


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


class PostgresLoader:
    """COPY ... FROM STDIN (text format) per table and batch, in one transaction per batch."""

    def __init__(self, url: str, releases: Sequence[Release]) -> None:
        import psycopg  # only here: SQLite runs need no driver

        plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(plain)
        stamp = _stamp("+00")
        self.converters = {table: _converters(table, stamp) for table in ORDER}
        with self.conn.cursor() as cur:
            cur.executemany("INSERT INTO release (id, hash, went_live_at, summary) VALUES (%s, %s, %s, '{}')",
                            [(r.id, r.hash, stamp(r.went_live_at)) for r in releases])
            cur.execute("SET session_replication_role = replica")
            tables = ", ".join(f"'{t}'::regclass" for t in ORDER)
            self.indexes = cur.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                f"WHERE i.indrelid IN ({tables}) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)").fetchall()
            for name, _ in self.indexes:
                cur.execute(f"DROP INDEX {name}")
        self.conn.commit()

    def write(self, rows: Rows) -> int:
        count = 0
        with self.conn.cursor() as cur:
            for table in ORDER:
                batch = _convert(getattr(rows, table), self.converters[table])
                if not batch:
                    continue
                text = "".join("\t".join(map(_copy_text, row)) + "\n" for row in batch)
                with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                    copy.write(text.encode())
                count += len(batch)
        self.conn.commit()
        return count

    def close(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '256MB'")
            for _, sql in self.indexes:
                cur.execute(sql)
            cur.execute("SET session_replication_role = origin")
            for table in ORDER:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"GREATEST((SELECT max(id) FROM {table}), 1))")
        self.conn.commit()
        # Autovacuum would have analyzed tables this size long ago on a live server.
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        self.conn.close()
