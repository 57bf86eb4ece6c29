"""A broadcast's audience as SQL: the conditions of `Audience` over a funnel's enrollments.

The same conditions as `engine.flow.broadcasts.matches`, which decides them for one
person in `simulate` (tests/store/test_audience.py compares the two on random lists).
Events count as the interpreter sees them (engine/flow/facts.py): answers, purchases and
unsubscribes of this funnel or of every funnel; opens and clicks from any funnel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import NamedFromClause

from engine.flow.state import EventType, Stage
from engine.flow.status import SubscriberStatus
from engine.sequences.plan import Audience
from engine.store.db import DbConnection
from engine.store.tables import ENROLLMENT, EVENT, SUBSCRIBER, TAG
from engine.store.tally_sql import REACHED

# Always left out of a broadcast and never taken into its recipients: for good.
GONE = (
    SubscriberStatus.UNSUBSCRIBED.value,
    SubscriberStatus.BOUNCED.value,
    SubscriberStatus.COMPLAINED.value,
)
# Taken, then skipped at their time unless they moved on by then (engine/flow/broadcasts.py).
LEFT_OUT_STAGES = (Stage.CONFIRMING.value, Stage.WINBACK.value, Stage.SUNSET.value)


Enrollments = sa.TableClause  # ENROLLMENT, or the same table read without an index (`scanned`)


class _NotIndexed(sa.TableClause):
    """The enrollment table, read by SQLite in rowid order (`NOT INDEXED`) when it is a FROM."""

    inherit_cache = True


@compiles(_NotIndexed, "sqlite")
def _not_indexed(element: _NotIndexed, compiler: Any, **kw: Any) -> str:
    text = str(compiler.visit_table(element, **kw))
    return f"{text} NOT INDEXED" if kw.get("asfrom") else text


def scanned(conn: DbConnection) -> Enrollments:
    """The enrollments as a count over a funnel reads them fastest: on SQLite in rowid order.

    Walking an index on (funnel, created_at) reads them in signup order, and every event a
    condition looks up is then a random probe into the event table; in rowid order their
    subscribers come in order and the probes stay local: a million in about 1 s of CPU
    against 2-6 (docs/benchmarks.md, "Broadcasts at a million"). PostgreSQL plans this itself.
    """
    if conn.dialect.name != "sqlite":
        return ENROLLMENT
    return _NotIndexed("enrollment", *(sa.column(c.name, c.type) for c in ENROLLMENT.c))


def _seen(funnel: str, event: NamedFromClause) -> sa.ColumnElement[bool]:
    return sa.or_(event.c.funnel.is_(None), event.c.funnel == funnel)


def _latest_answer_in(
    funnel: str, question: str, accepted: frozenset[str], e: Enrollments, ranked: bool = False
) -> sa.ColumnElement[bool]:
    """Their latest answer to `question` (a later one, or a later id at the same second, wins) is accepted.

    `ranked` (PostgreSQL): each subscriber's latest answer is found once for all, with a
    window function, instead of a correlated pair of lookups per enrollment, which the
    planner misjudges at a million (docs/benchmarks.md, "Broadcasts at a million").
    """
    if ranked:
        order = sa.func.row_number().over(
            partition_by=EVENT.c.subscriber_id, order_by=(EVENT.c.at.desc(), EVENT.c.id.desc())
        )
        latest = (
            sa.select(EVENT.c.subscriber_id, EVENT.c.answer, order.label("rank"))
            .where(EVENT.c.type == EventType.ANSWER.value, EVENT.c.question == question, _seen(funnel, EVENT))
            .subquery()
        )
        return e.c.subscriber_id.in_(
            sa.select(latest.c.subscriber_id).where(latest.c.rank == 1, latest.c.answer.in_(sorted(accepted)))
        )
    answer, later = EVENT.alias(), EVENT.alias()
    newer = sa.exists().where(
        later.c.subscriber_id == answer.c.subscriber_id,
        later.c.type == EventType.ANSWER.value,
        later.c.question == question,
        _seen(funnel, later),
        sa.or_(later.c.at > answer.c.at, sa.and_(later.c.at == answer.c.at, later.c.id > answer.c.id)),
    )
    return sa.exists().where(
        answer.c.subscriber_id == e.c.subscriber_id,
        answer.c.type == EventType.ANSWER.value,
        answer.c.question == question,
        _seen(funnel, answer),
        answer.c.answer.in_(sorted(accepted)),
        ~newer,
    )


def _has_tag(names: frozenset[str], e: Enrollments) -> sa.Exists:
    tag = TAG.alias()
    return sa.exists().where(tag.c.subscriber_id == e.c.subscriber_id, tag.c.name.in_(sorted(names)))


def conditions(
    audience: Audience, funnel: str, now: datetime, e: Enrollments = ENROLLMENT, ranked: bool = False
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of `audience` over enrollments `e` (joined to SUBSCRIBER) of `funnel` at `now`."""
    where: list[sa.ColumnElement[bool]] = [e.c.funnel == funnel]
    if audience.segments is not None:
        where.append(e.c.segment.in_(sorted(audience.segments)))
    if audience.stages is not None:
        where.append(e.c.stage.in_(sorted(audience.stages)))
    where.extend(
        _latest_answer_in(funnel, question, accepted, e, ranked) for question, accepted in audience.answers
    )
    where.extend(_has_tag(frozenset({name}), e) for name in sorted(audience.tags))
    if audience.without_tags:
        where.append(~_has_tag(audience.without_tags, e))
    purchase = EVENT.alias()
    if audience.bought is not None:
        products = (purchase.c.product.in_(sorted(audience.bought)),) if audience.bought else ()
        where.append(_purchased(funnel, purchase, products, e))
    if audience.not_bought is not None:
        products = (purchase.c.product.in_(sorted(audience.not_bought)),) if audience.not_bought else ()
        where.append(~_purchased(funnel, purchase, products, e))
    if audience.engaged_within is not None:
        since = now - audience.engaged_within
        engaged = EVENT.alias()
        where.append(
            sa.exists().where(
                engaged.c.subscriber_id == e.c.subscriber_id,
                engaged.c.type.in_([EventType.OPEN.value, EventType.CLICK.value]),
                engaged.c.at >= since,
            )
        )
    if audience.signed_up_after is not None:
        where.append(e.c.created_at >= audience.signed_up_after)
    if audience.signed_up_before is not None:
        where.append(e.c.created_at < audience.signed_up_before)
    return where


def _purchased(
    funnel: str, purchase: NamedFromClause, products: tuple[sa.ColumnElement[bool], ...], e: Enrollments
) -> sa.Exists:
    return sa.exists().where(
        purchase.c.subscriber_id == e.c.subscriber_id,
        purchase.c.type == EventType.PURCHASE.value,
        _seen(funnel, purchase),
        *products,
    )


def unsubscribed(e: Enrollments = ENROLLMENT) -> sa.ColumnElement[bool]:
    """They unsubscribed from every funnel (or their address is blocked), or from this one.

    From this funnel: the enrollment's `unsubscribed` bit, which the stats triggers set from
    the unsubscribe events (engine/store/tally_sql.py), so that counting a million people
    reads no events. An unsubscribe event the bit does not know (one for every funnel
    written without the subscriber's status) is still seen when the broadcast is due: the
    interpreter skips them then (engine/flow/broadcasts.py).
    """
    return sa.or_(SUBSCRIBER.c.status.in_(GONE), e.c.reached.op("&")(REACHED["unsubscribed"]) != 0)


@dataclass(frozen=True)
class Counts:
    """How the audience of a broadcast stands now, before any ratio check."""

    matching: int  # every enrollment the conditions select
    gone: dict[str, int]  # left out for good, by why: unsubscribed, bounced, complained
    left_out: dict[str, int]  # taken but skipped unless they move on first: confirming, winback, sunset
    by_timezone: dict[str, int]  # of those taken (not gone), per time zone

    @property
    def taken(self) -> int:
        """How many the broadcast takes as recipients."""
        return self.matching - sum(self.gone.values())


def count(
    conn: DbConnection,
    audience: Audience,
    funnel: str,
    now: datetime,
    signed_up_before: datetime | None = None,
) -> Counts:
    """The audience counted in one statement, grouped by what leaves people out."""
    e = scanned(conn)
    gone = sa.case(
        (SUBSCRIBER.c.status.in_(GONE), SUBSCRIBER.c.status),
        (e.c.reached.op("&")(REACHED["unsubscribed"]) != 0, sa.literal(SubscriberStatus.UNSUBSCRIBED.value)),
        else_=sa.literal(""),
    ).label("gone")
    where = conditions(audience, funnel, now, e, ranked=conn.dialect.name == "postgresql")
    if signed_up_before is not None:
        where.append(e.c.created_at < signed_up_before)
    statement = (
        sa.select(gone, e.c.stage, SUBSCRIBER.c.timezone, sa.func.count().label("n"))
        .select_from(e.join(SUBSCRIBER, SUBSCRIBER.c.id == e.c.subscriber_id))
        .where(*where)
        .group_by(gone, e.c.stage, SUBSCRIBER.c.timezone)
    )
    matching = 0
    gone_counts: dict[str, int] = {}
    left_out: dict[str, int] = {}
    zones: dict[str, int] = {}
    for row in conn.execute(statement):
        matching += row.n
        if row.gone:
            gone_counts[row.gone] = gone_counts.get(row.gone, 0) + row.n
            continue
        zones[row.timezone] = zones.get(row.timezone, 0) + row.n
        if row.stage in LEFT_OUT_STAGES:
            left_out[row.stage] = left_out.get(row.stage, 0) + row.n
    return Counts(matching, gone_counts, left_out, zones)


def recipients_after(
    conn: DbConnection,
    audience: Audience,
    funnel: str,
    now: datetime,
    signed_up_before: datetime,
    after_id: int,
    limit: int,
) -> list[Any]:
    """The next `limit` enrollments of the audience by id after `after_id`, gone ones left out:
    (enrollment id, subscriber id, time zone)."""
    statement = (
        sa.select(ENROLLMENT.c.id, ENROLLMENT.c.subscriber_id, SUBSCRIBER.c.timezone)
        .select_from(ENROLLMENT.join(SUBSCRIBER, SUBSCRIBER.c.id == ENROLLMENT.c.subscriber_id))
        .where(
            ENROLLMENT.c.id > after_id,
            ENROLLMENT.c.created_at < signed_up_before,
            ~unsubscribed(),
            *conditions(audience, funnel, now, ranked=conn.dialect.name == "postgresql"),
        )
        .order_by(ENROLLMENT.c.id)
        .limit(limit)
    )
    return list(conn.execute(statement))


def sample_states(
    conn: DbConnection, audience: Audience, funnel: str, now: datetime, every: int
) -> Iterator[Any]:
    """Every `every`-th enrollment row of the audience by id (gone ones left out): a sample spread
    over the list, for estimating what the interpreter would decide for them (the ratio)."""
    statement = (
        sa.select(ENROLLMENT)
        .select_from(ENROLLMENT.join(SUBSCRIBER, SUBSCRIBER.c.id == ENROLLMENT.c.subscriber_id))
        .where(
            ~unsubscribed(),
            *conditions(audience, funnel, now, ranked=conn.dialect.name == "postgresql"),
            (ENROLLMENT.c.id % max(every, 1)) == 0,
        )
        .order_by(ENROLLMENT.c.id)
    )
    yield from conn.execute(statement).mappings()
