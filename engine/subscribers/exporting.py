"""`funnel subscribers export`: every subscriber (of a funnel) as CSV rows, streamed.

The columns are the ones `subscribers import` reads, so that an export imports back
cleanly: status, created_at and the funnel's stage, segment and step are written for
people to read and ignored on import (a row whose status is unsubscribed, bounced or
complained is not imported at all).

Streaming: PostgreSQL sends the rows through a server-side cursor, 1,000 at a time, in
one read transaction (readers never block the daemon there). On SQLite every
transaction of this engine takes the write lock (BEGIN IMMEDIATE), and exporting a
million rows takes seconds, longer than the daemon's 10 s busy timeout; so SQLite is
read in pages of 1,000 by id, each page its own short transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from engine.store import reports
from engine.store.db import DbEngine, Row
from engine.subscribers.leads import UTM_KEYS

PAGE = 1000
BASE_COLUMNS = ("email", "name", "locale", "timezone", "status", "source", *UTM_KEYS, "created_at")
FUNNEL_COLUMNS = ("stage", "segment", "step")


def header(fields: list[str], funnel: str | None) -> list[str]:
    """The CSV header: the subscriber's columns, one `field.<name>` per custom field, then the position."""
    return [*BASE_COLUMNS, *(f"field.{name}" for name in fields), *(FUNNEL_COLUMNS if funnel else ())]


def field_names(db_engine: DbEngine, funnel: str | None) -> list[str]:
    """The custom field names to give columns to."""
    with db_engine.connect() as conn:
        return reports.custom_field_names(conn, funnel)


def rows(db_engine: DbEngine, funnel: str | None) -> Iterator[Row]:
    """Every subscriber (of `funnel`), in id order, without holding them all in memory."""
    if db_engine.dialect.name == "postgresql":
        with db_engine.connect() as conn:
            yield from reports.export_stream(conn, funnel)
        return
    after = 0
    while True:
        with db_engine.connect() as conn:
            page = reports.export_page(conn, funnel, after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]["id"]


def cells(row: Row, fields: list[str], funnel: str | None) -> list[str]:
    """One subscriber as the cells of `header(fields, funnel)`."""
    values: list[str] = [_text(row[name]) for name in BASE_COLUMNS if name != "created_at"]
    values.append(row["created_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    custom = row["fields"] or {}
    values.extend(_text(custom.get(name)) for name in fields)
    if funnel:
        values.extend(_text(row[name]) for name in FUNNEL_COLUMNS)
    return values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):  # a structured custom field sent through the API
        return json.dumps(value, ensure_ascii=False)
    return str(value)
