"""`funnel subscribers export`: every subscriber (of a funnel) as CSV rows, streamed.

The columns are the ones `subscribers import` reads, so that an export imports back
cleanly: status, created_at and the funnel's stage, segment and step are written for
people to read and ignored on import (a row whose status is unsubscribed, bounced or
complained is not imported at all).

The rows are streamed (`engine.store.reports.export_rows`): a million subscribers never
sit in memory at once, and SQLite's write lock is never held for long.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from engine.store import reports
from engine.store.db import DbEngine, Row
from engine.subscribers.leads import UTM_KEYS

BASE_COLUMNS = ("email", "name", "first_name", "last_name", "locale", "timezone", "status", "source",
                *UTM_KEYS, "created_at")
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
    return reports.export_rows(db_engine, funnel)


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
