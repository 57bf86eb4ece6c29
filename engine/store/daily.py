"""Per-day activity of a funnel or one email, for the dashboard's charts over time.

Read from the `daily` tallies the triggers of `daily_sql` keep: a range of days costs a
read of that range's keys (days x metrics x emails, a few thousand rows for a month),
whatever the list's size. `recount_statements` counts the same from the rows; the
tallies' recount (`tallies.recount`, migration 0008, `funnel db recount`) and the tests
use it as the oracle. Guardrail pauses and resumes are read here too, for the marks on
the charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.store.daily_sql import CONFIRMED_STAGE, EACH, FIRSTS, KIND, PURCHASE
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT, GUARDRAIL_EVENT, MILESTONE, TALLY, TALLY_TOTAL
from engine.store.tally_sql import day_of

# A funnel's guardrail history is short (a pause is a rare, human-sized event); more than
# this many pauses and resumes before a range's end are not read.
MARK_LIMIT = 5_000


@dataclass(frozen=True)
class DayCount:
    """One metric's count on one day (for revenue: per currency, with its sum)."""

    day: date
    metric: str
    currency: str  # '' but for revenue with a currency
    n: int
    amount: float = 0.0


@dataclass(frozen=True)
class Mark:
    """A pause or a resume of a step, as the guardrail history has it."""

    at: datetime
    step: str
    action: str  # paused|resumed
    metric: str | None
    detail: str


def day_counts(
    conn: Connection, funnel: str, first: date, last: date, step: str | None = None
) -> list[DayCount]:
    """Every metric's count per day from `first` to `last` (both included), of the funnel or one email."""
    parts = []
    for table in (TALLY_TOTAL, TALLY):
        part = sa.select(table.c.day, table.c.k1, table.c.k3, table.c.n, table.c.amount).where(
            table.c.kind == KIND,
            table.c.funnel == funnel,
            table.c.day >= first.isoformat(),
            table.c.day <= last.isoformat(),
        )
        if step is not None:
            part = part.where(table.c.k2 == step)
        parts.append(part)
    both = sa.union_all(*parts).subquery()
    statement = (
        sa.select(both.c.day, both.c.k1, both.c.k3, sa.func.sum(both.c.n), sa.func.sum(both.c.amount))
        .group_by(both.c.day, both.c.k1, both.c.k3)
        .having(sa.func.sum(both.c.n) != 0)
    )
    return [
        DayCount(date.fromisoformat(str(day)), str(metric), str(currency), int(n), float(amount or 0))
        for day, metric, currency, n, amount in conn.execute(statement)
    ]


def has_mail(conn: Connection, funnel: str, step: str) -> bool:
    """Whether any day counted something of this email (a step no longer in the file may have)."""
    found = [
        sa.exists().where(table.c.kind == KIND, table.c.funnel == funnel, table.c.k2 == step)
        for table in (TALLY_TOTAL, TALLY)
    ]
    return bool(conn.execute(sa.select(sa.or_(*found))).scalar_one())


def marks(conn: Connection, funnel: str, before: datetime, step: str | None = None) -> list[Mark]:
    """The funnel's (or one step's) pauses and resumes before `before`, oldest first.

    From the beginning, not from a range's start: a pause that began before the range and
    still held in it is drawn from the range's first day.
    """
    g = GUARDRAIL_EVENT
    statement = (
        sa.select(g.c.at, g.c.step, g.c.action, g.c.metric, g.c.detail)
        .where(g.c.funnel == funnel, g.c.at < before)
        .order_by(g.c.at.desc(), g.c.id.desc())
        .limit(MARK_LIMIT)
    )
    if step is not None:
        statement = statement.where(g.c.step == step)
    rows = list(conn.execute(statement))
    return [
        Mark(at, str(s), str(action), metric, str(detail or ""))
        for at, s, action, metric, detail in reversed(rows)
    ]


def recount_statements(
    conn: Connection, funnel: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> list[sa.Select[Any]]:
    """The daily tallies counted from the rows, for what happened in [start, end): statements whose
    rows are tally rows (kind, funnel, day, k1..k4, n, amount, priced)."""
    blank, zero, none = sa.literal(""), sa.literal(0.0), sa.literal(0)

    def within(
        statement: sa.Select[Any], funnel_column: sa.ColumnElement[Any], at: sa.ColumnElement[Any]
    ) -> sa.Select[Any]:
        if funnel is not None:
            statement = statement.where(funnel_column == funnel)
        if start is not None:
            statement = statement.where(at >= start)
        if end is not None:
            statement = statement.where(at < end)
        return statement

    def counted(
        table: sa.Table, at: sa.ColumnElement[Any], metric: Any, step: Any, *where: sa.ColumnElement[bool]
    ) -> sa.Select[Any]:
        day = day_of(conn, at)
        statement = sa.select(
            sa.literal(KIND), table.c.funnel, day, metric, step, blank, blank, sa.func.count(), zero, none
        ).where(*where)
        return within(statement, table.c.funnel, at).group_by(table.c.funnel, day, metric, step)

    e, m, d, p = ENROLLMENT, MILESTONE, DELIVERY, EVENT
    statements = [
        counted(e, e.c.created_at, sa.literal("signups"), blank),
        counted(m, m.c.at, sa.literal("confirmations"), blank, m.c.stage == CONFIRMED_STAGE),
        counted(d, d.c.sent_at, sa.literal("sent"), d.c.step, d.c.sent_at.is_not(None)),
        counted(
            p,
            p.c.at,
            sa.case(*((p.c.type == t, name) for t, name in EACH.items())),
            sa.func.coalesce(p.c.step, ""),
            p.c.type.in_(list(EACH)),
            p.c.funnel.is_not(None),
        ),
    ]
    # Opens and clicks: each email's first, by time and then by id.
    ranking = sa.select(
        p.c.funnel.label("funnel"),
        p.c.step.label("step"),
        p.c.type.label("type"),
        p.c.at.label("at"),
        sa.func.row_number()
        .over(partition_by=(p.c.subscriber_id, p.c.funnel, p.c.step, p.c.type), order_by=(p.c.at, p.c.id))
        .label("rank"),
    ).where(p.c.type.in_(list(FIRSTS)), p.c.funnel.is_not(None), p.c.step.is_not(None))
    if funnel is not None:  # the range narrows the firsts below, not the events they are first of
        ranking = ranking.where(p.c.funnel == funnel)
    ranked = ranking.subquery()
    firsts_day = day_of(conn, ranked.c.at)
    metric = sa.case(*((ranked.c.type == t, name) for t, name in FIRSTS.items()))
    firsts = sa.select(
        sa.literal(KIND),
        ranked.c.funnel,
        firsts_day,
        metric,
        ranked.c.step,
        blank,
        blank,
        sa.func.count(),
        zero,
        none,
    ).where(ranked.c.rank == 1)
    if start is not None:
        firsts = firsts.where(ranked.c.at >= start)
    if end is not None:
        firsts = firsts.where(ranked.c.at < end)
    statements.append(firsts.group_by(ranked.c.funnel, firsts_day, metric, ranked.c.step))
    # Revenue: each purchase once per enrollment it counts for (tally_sql._counted).
    bought = sa.and_(
        p.c.subscriber_id == e.c.subscriber_id,
        p.c.type == PURCHASE,
        sa.or_(p.c.funnel == e.c.funnel, p.c.funnel.is_(None)),
        p.c.at >= e.c.created_at,
    )
    currency, day = sa.func.coalesce(p.c.currency, ""), day_of(conn, p.c.at)
    revenue = sa.select(
        sa.literal(KIND),
        e.c.funnel,
        day,
        sa.literal("revenue"),
        blank,
        currency,
        blank,
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(p.c.amount), 0.0),
        sa.func.count(p.c.amount),
    ).select_from(e.join(p, bought))
    statements.append(within(revenue, e.c.funnel, p.c.at).group_by(e.c.funnel, day, currency))
    return statements


def count_afresh(conn: Connection) -> None:
    """Make the daily tallies a count from the rows (migration 0008), in the caller's write transaction.

    On PostgreSQL the tables are locked against writes first, as `tallies.replace_totals` does:
    a change committed while it counts would be counted twice.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "LOCK TABLE enrollment, milestone, event, delivery, tally, tally_total "
            "IN SHARE ROW EXCLUSIVE MODE"
        )
    conn.execute(sa.delete(TALLY).where(TALLY.c.kind == KIND))
    conn.execute(sa.delete(TALLY_TOTAL).where(TALLY_TOTAL.c.kind == KIND))
    columns = ["kind", "funnel", "day", "k1", "k2", "k3", "k4", "n", "amount", "priced"]
    for statement in recount_statements(conn):  # each counts metrics of its own: no key twice
        conn.execute(sa.insert(TALLY_TOTAL).from_select(columns, statement))
