"""Read-only statements for the operator's commands: import checks, export, one person, live-edit impact.

Named by intent, like `queries`; each takes a Connection inside the caller's transaction.
The aggregate ones (`positions`, `custom_field_names`) run in the database so that a
million enrollments cost one scan, not a million Python rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from engine.store import tallies
from engine.store.rows import email_hash
from engine.store.tables import CONSENT, ENROLLMENT, SUBSCRIBER, SUPPRESSION, TAG

# Rows a server-side cursor fetches at a time while streaming an export (PostgreSQL).
STREAM_BATCH = 1000


# --- import ------------------------------------------------------------------------------


def enrolled_keys(conn: Connection, funnel: str, keys: Iterable[str]) -> set[str]:
    """Which of these identity keys (lowercased addresses) are already enrolled in `funnel`."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    statement = (
        sa.select(SUBSCRIBER.c.email_key)
        .join(ENROLLMENT, ENROLLMENT.c.subscriber_id == SUBSCRIBER.c.id)
        .where(ENROLLMENT.c.funnel == funnel, SUBSCRIBER.c.email_key.in_(wanted))
    )
    return set(conn.execute(statement).scalars())


# --- export ------------------------------------------------------------------------------


def funnel_names(conn: Connection) -> list[str]:
    """Every funnel that has enrollments, whether or not its file is still there.

    From the cohort tallies (a few thousand rows) rather than the enrollments: DISTINCT over a
    million of them took 0.35 s on PostgreSQL, a third of a `funnel stats`.
    """
    return tallies.funnels(conn)


def custom_field_names(conn: Connection, funnel: str | None = None) -> list[str]:
    """The custom field names any subscriber (of `funnel`) has, sorted; computed by the database."""
    if conn.dialect.name == "postgresql":
        keys: Any = sa.func.json_object_keys(SUBSCRIBER.c.fields)
        statement = sa.select(keys.label("key")).select_from(SUBSCRIBER)
    else:
        each = sa.func.json_each(SUBSCRIBER.c.fields).table_valued("key", name="each")
        statement = sa.select(each.c.key).select_from(SUBSCRIBER).join(each, sa.true())
    if funnel is not None:
        statement = statement.where(_enrolled_in(funnel))
    found = conn.execute(sa.select(statement.subquery().c.key).distinct())
    return sorted(str(name) for name in found.scalars())


def _enrolled_in(funnel: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(ENROLLMENT.c.subscriber_id == SUBSCRIBER.c.id, ENROLLMENT.c.funnel == funnel)


def _export_statement(funnel: str | None) -> sa.Select[Any]:
    if funnel is None:
        return sa.select(SUBSCRIBER).order_by(SUBSCRIBER.c.id)
    return (
        sa.select(SUBSCRIBER, ENROLLMENT.c.stage, ENROLLMENT.c.segment, ENROLLMENT.c.step)
        .join(ENROLLMENT, ENROLLMENT.c.subscriber_id == SUBSCRIBER.c.id)
        .where(ENROLLMENT.c.funnel == funnel)
        .order_by(SUBSCRIBER.c.id)
    )


def export_rows(db_engine: Engine, funnel: str | None) -> Iterator[RowMapping]:
    """Every subscriber (of `funnel`, with their position in it) in id order, streamed.

    PostgreSQL sends the rows through a server-side cursor, STREAM_BATCH at a time, in
    one read transaction (readers never block the daemon there). SQLite is read in pages
    of STREAM_BATCH by id, each page its own short read transaction: it takes no lock
    either (engine/store/db.py), and a read held open for the whole export (seconds at a
    million rows) would keep SQLite from folding its WAL file back meanwhile.
    """
    if db_engine.dialect.name == "postgresql":
        with db_engine.connect() as conn:
            result = conn.execution_options(yield_per=STREAM_BATCH).execute(_export_statement(funnel))
            yield from result.mappings()
        return
    after = 0
    while True:
        with db_engine.connect() as conn:
            statement = _export_statement(funnel).where(SUBSCRIBER.c.id > after).limit(STREAM_BATCH)
            page = list(conn.execute(statement).mappings())
        yield from page
        if len(page) < STREAM_BATCH:
            return
        after = page[-1]["id"]


# --- one person --------------------------------------------------------------------------


def consents_of(conn: Connection, subscriber_id: int) -> list[RowMapping]:
    """The subscriber's consent records, oldest first."""
    statement = sa.select(CONSENT).where(CONSENT.c.subscriber_id == subscriber_id)
    return list(conn.execute(statement.order_by(CONSENT.c.at, CONSENT.c.id)).mappings())


def tags_of(conn: Connection, subscriber_id: int) -> list[RowMapping]:
    """The subscriber's tags, by name."""
    statement = sa.select(TAG).where(TAG.c.subscriber_id == subscriber_id).order_by(TAG.c.name)
    return list(conn.execute(statement).mappings())


def suppression_of(conn: Connection, address: str) -> RowMapping | None:
    """The suppression entry of `address` (found by its hash), or None."""
    statement = sa.select(SUPPRESSION).where(SUPPRESSION.c.email_hash == email_hash(address))
    return conn.execute(statement).mappings().first()


# --- live edits (funnel validate --against-db) -------------------------------------------


def has_enrollments(db_engine: Engine) -> bool:
    """Whether the database has the enrollment table (a database never migrated has nothing to compare)."""
    return sa.inspect(db_engine).has_table("enrollment")


def positions(conn: Connection, funnels: Sequence[str] | None = None) -> list[RowMapping]:
    """How many enrollments stand at each (funnel, stage, segment, step, magnet): one GROUP BY."""
    columns = (ENROLLMENT.c.funnel, ENROLLMENT.c.stage, ENROLLMENT.c.segment, ENROLLMENT.c.step,
               ENROLLMENT.c.magnet)
    statement = sa.select(*columns, sa.func.count().label("count")).group_by(*columns)
    if funnels is not None:
        statement = statement.where(ENROLLMENT.c.funnel.in_(list(funnels)))
    return list(conn.execute(statement).mappings())


def histories_at(conn: Connection, funnel: str, steps: Sequence[str]) -> list[RowMapping]:
    """For enrollments of `funnel` at one of `steps`: how many share each (stage, segment, step, history).

    The history (the `done` list) says where a subscriber at a removed step continues.
    People at one step nearly always share one history, so this returns few rows.
    """
    done = sa.cast(ENROLLMENT.c.done, sa.Text).label("done")
    columns = (ENROLLMENT.c.stage, ENROLLMENT.c.segment, ENROLLMENT.c.step, done)
    statement = (
        sa.select(*columns, sa.func.count().label("count"))
        .where(ENROLLMENT.c.funnel == funnel, ENROLLMENT.c.step.in_(list(steps)))
        .group_by(*columns)
    )
    return list(conn.execute(statement).mappings())
