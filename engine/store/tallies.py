"""The stats tallies: reading them, folding the appended changes, and counting them afresh.

The triggers of `tally_sql` append a signed row to `tally` for every change to a funnel's
numbers. A read sums `tally_total` and the rows not folded yet, grouped by key: a few
thousand rows whatever the list's size, where counting from the enrollments, milestones and
events took 20 s at a million subscribers. `fold` moves the appended rows into the totals
(the daemon does it every guardrail check); `recount` computes the same rows from those
tables, which a migration uses to fill the tallies of an existing list and the tests use
to show that the kept numbers are exact.

Tallies are kept per signup day (UTC): a read from a time inside a day takes the whole
days after it from the tallies and counts that day's remaining hours from the rows
(`recount` narrowed to them, which the index on `enrollment.created_at` keeps small).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from engine.flow.state import EventType
from engine.store import daily
from engine.store.daily_sql import KIND
from engine.store.inserts import on_conflict_dialect
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT, MILESTONE, SUBSCRIBER, TALLY, TALLY_TOTAL
from engine.store.tally_sql import ACTED_EVENTS, MILESTONE_BITS, PENDING_AS, PENDING_STATUSES, REACHED, day_of

# `daily` is by the day things happened, not the signup day: engine/store/daily_sql.py.
KINDS = ("cohort", "revenue", "product", "customer", "answer", "mail", KIND)
_KEY = ("kind", "funnel", "day", "k1", "k2", "k3", "k4")
# PostgreSQL: one folder at a time, whatever daemon it runs in (an advisory lock's key).
_FOLD_LOCK = 7_240_514


@dataclass(frozen=True)
class TallyRow:
    """One key's sum: `n` (enrollments, purchases, customers or answers), money, priced purchases."""

    kind: str
    funnel: str
    day: str
    k1: str
    k2: str
    k3: str
    k4: str
    n: int
    amount: float
    priced: int


def tally_rows(
    conn: Connection,
    funnel: str | None = None,
    since: datetime | None = None,
    kinds: Iterable[str] = KINDS,
    *,
    by_day: bool = False,
) -> list[TallyRow]:
    """Every tally of `kinds` for the cohort of `funnel` (or every funnel) that signed up from `since` on.

    Summed over the signup days (`day` is '') unless `by_day`; a key may come twice when
    `since` is inside a day (its whole days, then its first day's remaining hours).
    """
    kinds = list(kinds)
    found = _kept(conn, funnel, _first_whole_day(since), kinds, by_day)
    if since is not None and since != _midnight(since):
        found += recount(conn, funnel, since, _midnight(since) + timedelta(days=1), kinds)
    return found


def _midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time(0), UTC)


def funnels(conn: Connection) -> list[str]:
    """The funnels that have enrollments now, by their cohort tallies."""
    parts = [sa.select(table.c.funnel, table.c.n).where(table.c.kind == "cohort")
             for table in (TALLY_TOTAL, TALLY)]
    both = sa.union_all(*parts).subquery()
    statement = (sa.select(both.c.funnel).group_by(both.c.funnel).having(sa.func.sum(both.c.n) > 0)
                 .order_by(both.c.funnel))
    return [str(name) for name in conn.execute(statement).scalars()]


def _first_whole_day(since: datetime | None) -> str | None:
    """The first signup day every hour of which is in the cohort."""
    if since is None:
        return None
    first = _midnight(since)
    return (first if first == since else first + timedelta(days=1)).date().isoformat()


def _kept(
    conn: Connection, funnel: str | None, first_day: str | None, kinds: list[str], by_day: bool
) -> list[TallyRow]:
    """The totals plus the appended rows, per key (and day), in one statement."""
    parts = []
    for table in (TALLY_TOTAL, TALLY):
        part = sa.select(*(table.c[k] for k in _KEY), table.c.n, table.c.amount, table.c.priced)
        part = part.where(table.c.kind.in_(kinds))
        if funnel is not None:
            part = part.where(table.c.funnel == funnel)
        if first_day is not None:
            part = part.where(table.c.day >= first_day)
        parts.append(part)
    both = sa.union_all(*parts).subquery()
    keys = [both.c[k] for k in _KEY if by_day or k != "day"]
    day = both.c.day if by_day else sa.literal("")
    statement = (
        sa.select(*keys[:2], day, *keys[-4:],
                  sa.func.sum(both.c.n), sa.func.sum(both.c.amount), sa.func.sum(both.c.priced))
        .group_by(*keys)
        .having(sa.or_(sa.func.sum(both.c.n) != 0, sa.func.sum(both.c.priced) != 0))
    )
    return [_row(row) for row in conn.execute(statement)]


def _row(row: Any) -> TallyRow:
    """A result row of the ten tally columns, in order."""
    kind, funnel, day, k1, k2, k3, k4 = (str(v) for v in row[:7])
    return TallyRow(kind, funnel, day, k1, k2, k3, k4, int(row[7]), float(row[8] or 0), int(row[9] or 0))


def fold(conn: Connection) -> int:
    """Sum the appended rows into the totals (in the caller's write transaction); rows folded."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FOLD_LOCK})
    last = conn.execute(sa.select(sa.func.max(TALLY.c.id))).scalar()
    if last is None:
        return 0
    keys = [TALLY.c[k] for k in _KEY]
    summed = (
        sa.select(*keys, sa.func.sum(TALLY.c.n), sa.func.sum(TALLY.c.amount), sa.func.sum(TALLY.c.priced))
        .where(TALLY.c.id <= last)
        .group_by(*keys)
    )
    _add_to_totals(conn, summed)
    deleted = conn.execute(sa.delete(TALLY).where(TALLY.c.id <= last)).rowcount
    # A key whose changes cancelled out (an enrollment that moved on from a mask) is dropped.
    conn.execute(sa.delete(TALLY_TOTAL).where(TALLY_TOTAL.c.n == 0, TALLY_TOTAL.c.priced == 0))
    return int(deleted)


def _add_to_totals(conn: Connection, rows: sa.Select[Any]) -> None:
    """INSERT ... SELECT into tally_total, adding to a key that is there."""
    dialect = on_conflict_dialect(conn)
    if dialect is sqlite:
        rows = rows.where(sa.true())  # SQLite: an upsert's SELECT needs a WHERE (parsing ambiguity)
    columns = [*_KEY, "n", "amount", "priced"]
    statement = dialect.insert(TALLY_TOTAL).from_select(columns, rows)
    statement = statement.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={name: TALLY_TOTAL.c[name] + statement.excluded[name] for name in ("n", "amount", "priced")},
    )
    conn.execute(statement)


def replace_totals(conn: Connection) -> None:
    """Count every tally afresh from the rows (`reached` first) and make that the totals.

    For a migration, a bulk load and `funnel db recount`. Writers wait until it commits: on
    SQLite the write transaction holds the one lock; on PostgreSQL the tables are locked
    against writes first, or a change committed while it counts would be counted twice.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE subscriber, enrollment, milestone, event, delivery, tally, "
                             "tally_total IN SHARE ROW EXCLUSIVE MODE")
    set_reached(conn)
    set_acted(conn)
    conn.execute(sa.delete(TALLY))
    conn.execute(sa.delete(TALLY_TOTAL))
    for row in recount(conn):
        conn.execute(sa.insert(TALLY_TOTAL).values(
            kind=row.kind, funnel=row.funnel, day=row.day, k1=row.k1, k2=row.k2, k3=row.k3, k4=row.k4,
            n=row.n, amount=row.amount, priced=row.priced))


def set_reached(conn: Connection) -> None:
    """Compute `enrollment.reached` from the milestones and events (the triggers keep it after)."""
    conn.execute(sa.update(ENROLLMENT).values(reached=_reached_from_rows()))


def _reached_from_rows() -> sa.ColumnElement[int]:
    """An enrollment's `reached` mask as its milestones and events make it (correlated to ENROLLMENT)."""
    e = ENROLLMENT
    stage_bit = sa.case(*((MILESTONE.c.stage == s, b) for s, b in MILESTONE_BITS.items()), else_=0)
    stages = sa.select(sa.func.coalesce(sa.func.sum(stage_bit), 0)).where(
        MILESTONE.c.enrollment_id == e.c.id, MILESTONE.c.stage.in_(list(MILESTONE_BITS))
    ).scalar_subquery()

    def did(bit: str, *where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        found = sa.exists().where(EVENT.c.subscriber_id == e.c.subscriber_id, *where)
        return sa.case((found, REACHED[bit]), else_=0)

    deeds = (
        did("answered", EVENT.c.type == EventType.ANSWER.value, EVENT.c.funnel == e.c.funnel)
        .op("|")(did("purchased", EVENT.c.type == EventType.PURCHASE.value,
                     sa.or_(EVENT.c.funnel == e.c.funnel, EVENT.c.funnel.is_(None)),
                     EVENT.c.at >= e.c.created_at))
        .op("|")(did("unsubscribed", EVENT.c.type == EventType.UNSUBSCRIBE.value,
                     EVENT.c.funnel == e.c.funnel))
    )
    return stages.op("|")(deeds)


def set_acted(conn: Connection) -> None:
    """Compute `delivery.acted` from the events naming each email's step (the triggers keep it after)."""
    d = DELIVERY
    conn.execute(sa.update(d).values(acted=0).where(d.c.acted != 0))
    found = [{"_id": i, "_acted": a} for i, a in _acted_from_rows(conn).items()]
    if found:
        by_id = sa.update(d).where(d.c.id == sa.bindparam("_id")).values(acted=sa.bindparam("_acted"))
        conn.execute(by_id, found)


def _acted_from_rows(conn: Connection) -> dict[int, int]:
    """Delivery id -> its `acted` mask as the events naming its step make it (those with any)."""
    d, e = DELIVERY, ENROLLMENT
    bit = sa.case(*((EVENT.c.type == kind, b) for kind, b in ACTED_EVENTS.items()), else_=0)
    # From the events (a few per subscriber) to their email, through the enrollment: one
    # pass, where a subquery per email let SQLite scan each step's events for every one.
    acted = (
        sa.select(d.c.id, sa.func.sum(sa.distinct(bit)))
        .select_from(
            EVENT.join(e, sa.and_(e.c.subscriber_id == EVENT.c.subscriber_id, e.c.funnel == EVENT.c.funnel))
            .join(d, sa.and_(d.c.enrollment_id == e.c.id, d.c.step == EVENT.c.step))
        )
        .where(EVENT.c.type.in_(list(ACTED_EVENTS)))
        .group_by(d.c.id)
    )
    return {int(i): int(a) for i, a in conn.execute(acted)}


def differences(conn: Connection) -> list[str]:
    """What the kept tallies and masks get wrong against a recount from the rows; [] when exact.

    Reads only (safe beside running daemons, in one snapshot): the masks are compared with
    what the milestones and events make them, then the tallies with a recount of the rows.
    """
    found: list[str] = []
    e, d = ENROLLMENT, DELIVERY
    wrong = conn.execute(sa.select(sa.func.count()).where(e.c.reached != _reached_from_rows())).scalar_one()
    if wrong:
        found.append(f"{wrong} enrollments' reached mask differs from their milestones and events")
    expected = _acted_from_rows(conn)
    kept = {int(i): int(a) for i, a in conn.execute(sa.select(d.c.id, d.c.acted).where(d.c.acted != 0))}
    off = sum(1 for i in expected.keys() | kept.keys() if expected.get(i, 0) != kept.get(i, 0))
    if off:
        found.append(f"{off} emails' acted mask differs from the events naming their step")
    if not found:  # with the masks right, the recount counts what the tallies should hold
        kept_rows, counted = _by_key(tally_rows(conn, by_day=True)), _by_key(recount(conn))
        none = (0, 0.0, 0)
        for name in sorted(kept_rows.keys() | counted.keys()):
            if kept_rows.get(name, none) != counted.get(name, none):
                found.append(f"{' '.join(part for part in name if part)}: kept {kept_rows.get(name, none)}, "
                             f"counted {counted.get(name, none)} (n, amount, priced)")
    return found


def _by_key(rows: Iterable[TallyRow]) -> dict[tuple[str, ...], tuple[int, float, int]]:
    """Tally rows by their whole key, money rounded against float noise."""
    return {(r.kind, r.funnel, r.day, r.k1, r.k2, r.k3, r.k4): (r.n, round(r.amount, 6), r.priced)
            for r in rows}


def recount(
    conn: Connection,
    funnel: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kinds: Iterable[str] = KINDS,
) -> list[TallyRow]:
    """The tallies counted from the rows, for enrollments (emails, for `mail`) created in [start, end)."""
    e, s, p = ENROLLMENT, SUBSCRIBER, EVENT
    day = day_of(conn, e.c.created_at)
    blank = sa.literal("")

    def narrowed(statement: sa.Select[Any]) -> sa.Select[Any]:
        if funnel is not None:
            statement = statement.where(e.c.funnel == funnel)
        if start is not None:
            statement = statement.where(e.c.created_at >= start)
        if end is not None:
            statement = statement.where(e.c.created_at < end)
        return statement

    segment, source, utm = (sa.func.coalesce(c, "") for c in (e.c.segment, s.c.source, s.c.utm_source))
    product, currency = sa.func.coalesce(p.c.product, ""), sa.func.coalesce(p.c.currency, "")
    with_subscriber = e.join(s, s.c.id == e.c.subscriber_id)
    counted = sa.and_(
        p.c.subscriber_id == e.c.subscriber_id,
        p.c.type == EventType.PURCHASE.value,
        sa.or_(p.c.funnel == e.c.funnel, p.c.funnel.is_(None)),
        p.c.at >= e.c.created_at,
    )
    money = (sa.func.count(), sa.func.coalesce(sa.func.sum(p.c.amount), 0), sa.func.count(p.c.amount))
    statements: dict[str, sa.Select[Any]] = {
        "cohort": sa.select(
            sa.literal("cohort"), e.c.funnel, day, segment, source, utm,
            sa.cast(e.c.reached, sa.String(12)), sa.func.count(), sa.literal(0.0), sa.literal(0),
        ).select_from(with_subscriber).group_by(e.c.funnel, day, segment, source, utm, e.c.reached),
        "revenue": sa.select(
            sa.literal("revenue"), e.c.funnel, day, segment, source, utm, currency, *money
        ).select_from(with_subscriber.join(p, counted))
        .group_by(e.c.funnel, day, segment, source, utm, currency),
        "product": sa.select(
            sa.literal("product"), e.c.funnel, day, product, currency, blank, blank, *money
        ).select_from(e.join(p, counted)).group_by(e.c.funnel, day, product, currency),
    }
    buyers = narrowed(
        sa.select(e.c.funnel.label("funnel"), day.label("day"), product.label("product"))
        .select_from(e.join(p, counted)).distinct().add_columns(e.c.id)
    ).subquery()
    statements["customer"] = sa.select(
        sa.literal("customer"), buyers.c.funnel, buyers.c.day, buyers.c.product, blank, blank, blank,
        sa.func.count(), sa.literal(0.0), sa.literal(0),
    ).group_by(buyers.c.funnel, buyers.c.day, buyers.c.product)
    ranked = narrowed(
        sa.select(
            e.c.funnel.label("funnel"), day.label("day"), p.c.question, p.c.answer,
            sa.func.row_number().over(
                partition_by=(e.c.id, p.c.question), order_by=(p.c.at.desc(), p.c.id.desc())
            ).label("rank"),
        ).select_from(e.join(p, sa.and_(p.c.subscriber_id == e.c.subscriber_id, p.c.funnel == e.c.funnel,
                                         p.c.type == EventType.ANSWER.value)))
        .where(p.c.question.is_not(None), p.c.answer.is_not(None))
    ).subquery()
    statements["answer"] = sa.select(
        sa.literal("answer"), ranked.c.funnel, ranked.c.day, ranked.c.question, ranked.c.answer, blank, blank,
        sa.func.count(), sa.literal(0.0), sa.literal(0),
    ).where(ranked.c.rank == 1).group_by(ranked.c.funnel, ranked.c.day, ranked.c.question, ranked.c.answer)
    d = DELIVERY
    status = sa.case((d.c.status.in_(PENDING_STATUSES), PENDING_AS), else_=d.c.status)
    mail_day = day_of(conn, d.c.created_at)
    mail = sa.select(
        sa.literal("mail"), d.c.funnel, mail_day, d.c.step, status, sa.cast(d.c.acted, sa.String(12)), blank,
        sa.func.count(), sa.literal(0.0), sa.literal(0),
    ).group_by(d.c.funnel, mail_day, d.c.step, status, d.c.acted)
    if funnel is not None:
        # Not through the index on (funnel, step, status): every email of the funnel. The
        # one on created_at finds the hours asked for.
        mail = mail.where(d.c.funnel.concat("") == funnel)
    if start is not None:
        mail = mail.where(d.c.created_at >= start)
    if end is not None:
        mail = mail.where(d.c.created_at < end)
    statements["mail"] = mail
    found: list[TallyRow] = []
    for kind in kinds:
        if kind == KIND:  # several statements, over the days things happened in [start, end)
            for each in daily.recount_statements(conn, funnel, start, end):
                found.extend(_row(row) for row in conn.execute(each))
            continue
        statement = statements[kind]
        if kind in ("cohort", "revenue", "product"):
            statement = narrowed(statement)
        for row in conn.execute(statement):
            found.append(_row(row))
    return found
