"""Funnel stage counts read from the database: how many of a cohort of signups got how far.

A cohort is the funnel's enrollments created at or after `since` (all of them without
one). Every count is of enrollments of the cohort (one per subscriber and funnel), so a
stage never counts a person twice and a later stage never counts someone who signed up
before the cohort. Stages come from the `milestone` rows (the first time an enrollment
entered a stage), not from where enrollments stand now: someone who went on to sales
still counts as having reached nurture.

Three statements do the work whatever the list's size: one GROUP BY over the cohort with
its stages pivoted out of `milestone` and `event` (joined by hash), one over its
purchases, one over its latest answers. Python then only adds up the few groups they
return (funnel x segment x source). The same purchases per product are `products.py`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.flow.state import EventType, Stage
from engine.store.tables import ENROLLMENT, EVENT, MILESTONE, SUBSCRIBER

# The funnel's main stages, in order: each one's conversion is taken over the one before.
MAIN_STAGES = ("signed_up", "confirmed", "answered", "nurture", "sales", "purchased", "customers")
# The stage (a milestone row) each count is made of.
_MILESTONES = {
    # Entering the magnet stage is what confirming (or needing no confirmation) does.
    "confirmed": Stage.MAGNET,
    "nurture": Stage.NURTURE,
    "sales": Stage.SALES,
    "customers": Stage.CUSTOMER,
    "winback": Stage.WINBACK,
    "sunset": Stage.SUNSET,
}
_WITH_SUBSCRIBER = ENROLLMENT.join(SUBSCRIBER, SUBSCRIBER.c.id == ENROLLMENT.c.subscriber_id)
# The counts made of events of the enrollment's subscriber, and the event each needs.
_DID = {"answered": EventType.ANSWER, "purchased": EventType.PURCHASE, "unsubscribed": EventType.UNSUBSCRIBE}
# Money is a currency -> amount; a purchase without a currency is kept under "".
Money = dict[str, float]
# Float sums of prices pick up noise (0.1 + 0.2); no currency has more than 4 decimals.
_DECIMALS = 6


@dataclass(frozen=True)
class StageCounts:
    """How many enrollments of a cohort reached each stage."""

    signed_up: int = 0
    confirmed: int = 0
    answered: int = 0  # gave at least one survey answer in this funnel
    nurture: int = 0
    sales: int = 0
    purchased: int = 0  # bought anything (this funnel's or any funnel's purchase) after signing up
    customers: int = 0
    winback: int = 0
    sunset: int = 0
    unsubscribed: int = 0  # unsubscribed from this funnel (or from every funnel)

    def __add__(self, other: StageCounts) -> StageCounts:
        """Both groups together."""
        return StageCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def conversions(self) -> list[tuple[str, int, float | None]]:
        """(stage, count, share of the stage it is reached from) for the main stages; None over 0."""
        found: list[tuple[str, int, float | None]] = []
        for name in MAIN_STAGES:
            count, base = getattr(self, name), CONVERSION_BASE.get(name)
            before = getattr(self, base) if base else 0
            found.append((name, count, round(count / before, _DECIMALS) if before else None))
        return found


# Each stage's conversion is taken over the stage people must pass to reach it. Answering
# is optional (who never answers reaches nurture in the default segment), so nurture counts
# from confirmed; a purchase can come before sales (nurture carries an offer in five), so
# purchases count from nurture. Otherwise a conversion could pass 100%.
CONVERSION_BASE = {
    "confirmed": "signed_up",
    "answered": "confirmed",
    "nurture": "confirmed",
    "sales": "nurture",
    "purchased": "nurture",
    "customers": "purchased",
}


@dataclass(frozen=True)
class CohortGroup:
    """The cohort's numbers for one (funnel, segment, source, utm_source)."""

    funnel: str
    segment: str | None
    source: str | None
    utm_source: str | None
    counts: StageCounts
    revenue: Money = field(default_factory=dict)
    purchases: int = 0


@dataclass(frozen=True)
class AnswerCount:
    """How many of the cohort's subscribers gave `answer` as their latest answer to `question`."""

    funnel: str
    question: str
    answer: str
    count: int


@dataclass
class SourceNumbers:
    """What one form or channel (source, utm_source) brought: leads, and buyers."""

    counts: StageCounts = StageCounts()
    revenue: Money = field(default_factory=dict)


@dataclass
class FunnelNumbers:
    """One funnel's cohort: totals, by segment, by source, revenue and answers."""

    funnel: str
    totals: StageCounts = StageCounts()
    segments: dict[str | None, StageCounts] = field(default_factory=dict)
    sources: dict[tuple[str | None, str | None], SourceNumbers] = field(default_factory=dict)
    revenue: Money = field(default_factory=dict)
    purchases: int = 0
    answers: list[AnswerCount] = field(default_factory=list)

    def revenue_per_subscriber(self) -> Money:
        """Revenue over everyone who signed up, per currency."""
        if not self.totals.signed_up:
            return {}
        return {cur: round(amount / self.totals.signed_up, _DECIMALS) for cur, amount in self.revenue.items()}


def funnel_numbers(
    conn: Connection, funnel: str | None = None, since: datetime | None = None
) -> dict[str, FunnelNumbers]:
    """Funnel -> its cohort's numbers, for one funnel or every funnel with enrollments."""
    found: dict[str, FunnelNumbers] = {}
    for group in cohort_groups(conn, funnel, since):
        numbers = found.setdefault(group.funnel, FunnelNumbers(group.funnel))
        numbers.totals += group.counts
        numbers.segments[group.segment] = numbers.segments.get(group.segment, StageCounts()) + group.counts
        source = numbers.sources.setdefault((group.source, group.utm_source), SourceNumbers())
        source.counts += group.counts
        add_money(source.revenue, group.revenue)
        add_money(numbers.revenue, group.revenue)
        numbers.purchases += group.purchases
    for answer in latest_answers(conn, funnel, since):
        found.setdefault(answer.funnel, FunnelNumbers(answer.funnel)).answers.append(answer)
    return found


def cohort_groups(
    conn: Connection, funnel: str | None = None, since: datetime | None = None
) -> list[CohortGroup]:
    """The cohort's stage counts and purchases per (funnel, segment, source, utm_source): two statements."""
    keys = (ENROLLMENT.c.funnel, ENROLLMENT.c.segment, SUBSCRIBER.c.source, SUBSCRIBER.c.utm_source)
    reached, did = _reached(funnel), _did(funnel, since)
    flags = [*(reached.c[name] for name in _MILESTONES), *(did.c[name] for name in _DID)]
    counted = (
        sa.select(*keys, sa.func.count().label("signed_up"),
                  *(sa.func.sum(sa.func.coalesce(flag, 0)).label(flag.name) for flag in flags))
        .select_from(
            _WITH_SUBSCRIBER.outerjoin(reached, reached.c.enrollment_id == ENROLLMENT.c.id)
            .outerjoin(did, did.c.enrollment_id == ENROLLMENT.c.id)
        )
        .group_by(*keys)
    )
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for found in conn.execute(cohort_of(counted, funnel, since)).mappings():
        values = {name: int(found[name] or 0) for name in ("signed_up", *_MILESTONES, *_DID)}
        key = tuple(found[k.name] for k in keys)
        groups[key] = {"counts": StageCounts(**values), "revenue": {}, "purchases": 0}
    bought = (
        sa.select(*keys, EVENT.c.currency, sa.func.sum(EVENT.c.amount), sa.func.count())
        .select_from(with_counted_purchases(_WITH_SUBSCRIBER))
        .group_by(*keys, EVENT.c.currency)
    )
    for row in conn.execute(cohort_of(bought, funnel, since)):
        group = groups[tuple(row[:4])]  # a purchase's enrollment is in the cohort, so its group is there
        if row[5] is not None:
            add_money(group["revenue"], {row[4] or "": float(row[5])})
        group["purchases"] += int(row[6])
    return [CohortGroup(*key, **values) for key, values in groups.items()]


def latest_answers(
    conn: Connection, funnel: str | None = None, since: datetime | None = None
) -> list[AnswerCount]:
    """Per (funnel, question, answer): the cohort's subscribers whose latest answer to it that is."""
    ranked = cohort_of(
        sa.select(
            ENROLLMENT.c.funnel,
            EVENT.c.question,
            EVENT.c.answer,
            sa.func.row_number()
            .over(
                partition_by=(ENROLLMENT.c.funnel, EVENT.c.subscriber_id, EVENT.c.question),
                order_by=(EVENT.c.at.desc(), EVENT.c.id.desc()),
            )
            .label("rank"),
        ).select_from(
            ENROLLMENT.join(
                EVENT,
                sa.and_(
                    EVENT.c.subscriber_id == ENROLLMENT.c.subscriber_id,
                    EVENT.c.funnel == ENROLLMENT.c.funnel,
                    EVENT.c.type == EventType.ANSWER.value,
                ),
            )
        ),
        funnel,
        since,
    ).where(EVENT.c.question.is_not(None), EVENT.c.answer.is_not(None)).subquery()
    keys = (ranked.c.funnel, ranked.c.question, ranked.c.answer)
    statement = sa.select(*keys, sa.func.count()).where(ranked.c.rank == 1).group_by(*keys).order_by(*keys)
    return [AnswerCount(f, q, a, int(n)) for f, q, a, n in conn.execute(statement)]


def cohort_of(statement: sa.Select[Any], funnel: str | None, since: datetime | None) -> sa.Select[Any]:
    """`statement` (over ENROLLMENT) narrowed to the cohort: one funnel or all, signed up since `since`."""
    if funnel is not None:
        statement = statement.where(ENROLLMENT.c.funnel == funnel)
    if since is not None:
        statement = statement.where(ENROLLMENT.c.created_at >= since)
    return statement


def _reached(funnel: str | None) -> sa.Subquery:
    """Per enrollment with milestones, 1 or 0 for each counted stage: one pass over `milestone`."""
    # A pivot joined by hash, not an EXISTS per stage and enrollment: on 100,000 enrollments
    # PostgreSQL ran the EXISTS form as 900,000 index probes (~3.7 s), this in well under a second.
    stages = {name: MILESTONE.c.stage == stage.value for name, stage in _MILESTONES.items()}
    pivot = (sa.func.max(sa.case((test, 1), else_=0)).label(name) for name, test in stages.items())
    counted = [stage.value for stage in _MILESTONES.values()]
    statement = sa.select(MILESTONE.c.enrollment_id, *pivot).where(MILESTONE.c.stage.in_(counted))
    if funnel is not None:
        statement = statement.where(MILESTONE.c.funnel == funnel)
    return statement.group_by(MILESTONE.c.enrollment_id).subquery("reached")


def _did(funnel: str | None, since: datetime | None) -> sa.Subquery:
    """Per cohort enrollment with events, 1 or 0 for answered, purchased and unsubscribed."""
    mine = ENROLLMENT.alias("mine")
    same = EVENT.c.funnel == mine.c.funnel
    tests = {
        "answered": sa.and_(EVENT.c.type == EventType.ANSWER.value, same),
        "purchased": sa.and_(EVENT.c.type == EventType.PURCHASE.value, *counted_purchase(mine)),
        "unsubscribed": sa.and_(EVENT.c.type == EventType.UNSUBSCRIBE.value, same),
    }
    pivot = (sa.func.max(sa.case((test, 1), else_=0)).label(name) for name, test in tests.items())
    statement = sa.select(mine.c.id.label("enrollment_id"), *pivot).select_from(
        mine.join(EVENT, sa.and_(EVENT.c.subscriber_id == mine.c.subscriber_id,
                                 EVENT.c.type.in_([kind.value for kind in _DID.values()])))
    )
    if funnel is not None:
        statement = statement.where(mine.c.funnel == funnel)
    if since is not None:
        statement = statement.where(mine.c.created_at >= since)
    return statement.group_by(mine.c.id).subquery("did")


def counted_purchase(enrollment: sa.FromClause) -> tuple[sa.ColumnElement[bool], ...]:
    """The join conditions that make a purchase event count for `enrollment`."""
    # A purchase without a funnel (the shop's) counts for every funnel the buyer is in, but
    # only after signing up to it: buying first and signing up later is no conversion.
    return (
        sa.or_(EVENT.c.funnel == enrollment.c.funnel, EVENT.c.funnel.is_(None)),
        EVENT.c.at >= enrollment.c.created_at,
    )


def with_counted_purchases(enrollments: sa.FromClause) -> sa.Join:
    """`enrollments` (ENROLLMENT, or a join holding it) joined to the purchases that count for each."""
    return enrollments.join(
        EVENT,
        sa.and_(
            EVENT.c.subscriber_id == ENROLLMENT.c.subscriber_id,
            EVENT.c.type == EventType.PURCHASE.value,
            *counted_purchase(ENROLLMENT),
        ),
    )


def add_money(total: Money, more: Mapping[str, float]) -> None:
    """Add `more` to `total`, per currency, rounded against float noise."""
    for currency, amount in more.items():
        total[currency] = round(total.get(currency, 0.0) + amount, _DECIMALS)
