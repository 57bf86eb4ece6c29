"""The subscriber list: adding and updating people, reading pages of them, and their tags."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.store.inserts import insert_ignoring_conflicts, insert_new
from engine.store.rows import normalize_email
from engine.store.tables import ENROLLMENT, SUBSCRIBER, TAG

SUBSCRIBER_COLUMNS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "fields",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)
# What a new subscriber gets when the signup says nothing (the table's defaults); a
# multi-row INSERT needs every value spelled out.
DEFAULT_LOCALE: str = SUBSCRIBER.c.locale.default.arg  # type: ignore[union-attr]
DEFAULT_TIMEZONE: str = SUBSCRIBER.c.timezone.default.arg  # type: ignore[union-attr]


def column_widths(names: Iterable[str]) -> dict[str, int | None]:
    """The most characters each of these subscriber columns holds (None: no limit)."""
    return {name: getattr(SUBSCRIBER.c[name].type, "length", None) for name in names}


def upsert_subscriber(conn: Connection, values: Mapping[str, Any], now: datetime) -> tuple[int, bool]:
    """(id, created): add the subscriber, or update the given non-empty fields of the known one."""
    stored, key = normalize_email(str(values["email"]))
    given = {k: v for k, v in values.items() if k in SUBSCRIBER_COLUMNS and v not in (None, "", {})}
    given["email"] = stored
    row = {**given, "email_key": key, "created_at": now, "updated_at": now}
    row.setdefault("fields", {})
    if insert_ignoring_conflicts(conn, SUBSCRIBER, [row], ["email_key"]):
        found = conn.execute(sa.select(SUBSCRIBER.c.id).where(SUBSCRIBER.c.email_key == key)).scalar_one()
        return int(found), True
    existing = conn.execute(
        sa.select(SUBSCRIBER.c.id, SUBSCRIBER.c.fields).where(SUBSCRIBER.c.email_key == key)
    ).one()
    del given["email"]  # the first spelling stays
    if "fields" in given:  # new custom fields add to the old ones
        given["fields"] = {**(existing.fields or {}), **given["fields"]}
    conn.execute(sa.update(SUBSCRIBER).where(SUBSCRIBER.c.id == existing.id).values(**given, updated_at=now))
    return int(existing.id), False


def insert_new_subscribers(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Add these subscriber rows in one statement, skipping addresses already on the list:
    identity key -> id of each one added."""
    returned = insert_new(conn, SUBSCRIBER, rows, ["email_key"], [SUBSCRIBER.c.email_key, SUBSCRIBER.c.id])
    return {str(key): int(id_) for key, id_ in returned}


def subscriber_ids(conn: Connection, keys: Iterable[str]) -> dict[str, int]:
    """Identity key (lowercased address) -> subscriber id, for those of `keys` on the list."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    statement = sa.select(SUBSCRIBER.c.email_key, SUBSCRIBER.c.id).where(SUBSCRIBER.c.email_key.in_(wanted))
    return {key: int(id_) for key, id_ in conn.execute(statement)}


def subscribers_page(
    conn: Connection, funnel: str | None, status: str | None, after: int, limit: int
) -> list[RowMapping]:
    """Up to `limit` subscribers with an id above `after`, by id; optionally of one funnel or status."""
    statement = sa.select(SUBSCRIBER).where(SUBSCRIBER.c.id > after)
    if status is not None:
        statement = statement.where(SUBSCRIBER.c.status == status)
    if funnel is not None:
        enrolled = sa.select(ENROLLMENT.c.id).where(
            ENROLLMENT.c.subscriber_id == SUBSCRIBER.c.id, ENROLLMENT.c.funnel == funnel
        )
        statement = statement.where(enrolled.exists())
    return list(conn.execute(statement.order_by(SUBSCRIBER.c.id).limit(limit)).mappings())


# --- tags --------------------------------------------------------------------------------


def add_tag(conn: Connection, subscriber_id: int, name: str, now: datetime) -> None:
    """Tag the subscriber with `name` (a tag they have already stays as it was)."""
    row = {"subscriber_id": subscriber_id, "name": name, "at": now}
    insert_ignoring_conflicts(conn, TAG, [row], ["subscriber_id", "name"])


def remove_tag(conn: Connection, subscriber_id: int, name: str) -> None:
    """Take the tag `name` off the subscriber, if they have it."""
    conn.execute(sa.delete(TAG).where(TAG.c.subscriber_id == subscriber_id, TAG.c.name == name))


def tags_by_subscriber(conn: Connection, ids: Iterable[int]) -> dict[int, list[str]]:
    """Subscriber id -> their tags, in one statement for all of `ids` (those without tags are left out)."""
    found: dict[int, list[str]] = defaultdict(list)
    wanted = list(set(ids))
    if not wanted:
        return found
    statement = sa.select(TAG.c.subscriber_id, TAG.c.name).where(TAG.c.subscriber_id.in_(wanted))
    for subscriber_id, name in conn.execute(statement):
        found[int(subscriber_id)].append(str(name))
    return found
