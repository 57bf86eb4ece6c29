"""Finding subscribers by a piece of their address or name: the dashboard's search, as a named query."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.store.tables import SUBSCRIBER

MAX_QUERY = 200  # characters of a search; an address is at most 320 but nobody types that much


def search_subscribers(conn: Connection, text: str, before: int | None, limit: int) -> list[RowMapping]:
    """Subscribers whose address or name contains `text` (any case; digits also match the id),
    newest first, with ids below `before`; at most `limit`.

    A substring match reads the whole table (no index helps `LIKE '%x%'`): fine for the
    lists of a few hundred thousand people this is for, and `limit` bounds the answer.
    """
    columns = (SUBSCRIBER.c.id, SUBSCRIBER.c.email, SUBSCRIBER.c.name, SUBSCRIBER.c.status,
               SUBSCRIBER.c.source, SUBSCRIBER.c.created_at)
    statement = sa.select(*columns)
    needle = text.strip().lower()[:MAX_QUERY]
    if needle:
        matches = [
            SUBSCRIBER.c.email_key.contains(needle, autoescape=True),
            sa.func.lower(SUBSCRIBER.c.name).contains(needle, autoescape=True),
        ]
        if needle.isdigit() and len(needle) < 19:
            matches.append(SUBSCRIBER.c.id == int(needle))
        statement = statement.where(sa.or_(*matches))
    if before is not None:
        statement = statement.where(SUBSCRIBER.c.id < before)
    return list(conn.execute(statement.order_by(SUBSCRIBER.c.id.desc()).limit(limit)).mappings())
