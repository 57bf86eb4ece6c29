"""Facts about the database itself, by key, in the `meta` table (the clock that writes it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.store.db import DbEngine
from engine.store.tables import DELIVERY, META


def read(db_engine: DbEngine, key: str) -> dict[str, Any] | None:
    """The value kept under `key`; None when there is none (or no meta table: a schema before 0004)."""
    with db_engine.connect() as conn:
        if not sa.inspect(conn).has_table(META.name):
            return None
        value = conn.execute(sa.select(META.c.value).where(META.c.key == key)).scalar_one_or_none()
    return dict(value) if value is not None else None


def keep_first(db_engine: DbEngine, key: str, value: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Keep `value` under `key` unless one is there already; the value kept, the first one written.

    Two daemons starting at once both try; the primary key lets one insert win and the
    other read the winner's value.
    """
    try:
        with db_engine.begin() as conn:
            found = conn.execute(sa.select(META.c.value).where(META.c.key == key)).scalar_one_or_none()
            if found is not None:
                return dict(found)
            conn.execute(sa.insert(META).values(key=key, value=value, updated_at=now))
            return value
    except sa.exc.IntegrityError:
        kept = read(db_engine, key)
        assert kept is not None  # the row that made the insert fail
        return kept


def has_sent_mail(db_engine: DbEngine) -> bool:
    """Whether any email was ever decided in this database (a daemon has run on it)."""
    with db_engine.connect() as conn:
        return conn.execute(sa.select(DELIVERY.c.id).limit(1)).first() is not None
