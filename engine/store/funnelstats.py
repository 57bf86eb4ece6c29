"""Funnel stage counts read from the database: how many of a cohort of signups got how far.

A cohort is the funnel's enrollments created at or after `since` (all of them without
one). Every count is of enrollments of the cohort (one per subscriber and funnel), so a
stage never counts a person twice and a later stage never counts someone who signed up
before the cohort. Stages come from the `milestone` rows (the first time an enrollment
entered a stage), not from where enrollments stand now: someone who went on to sales
still counts as having reached nurture.

The numbers are read from the stats tallies (`tallies.py`), which database triggers keep
as those rows are written: one statement over a few thousand rows whatever the list's size.
Python then adds up the groups (funnel x segment x source, per signup day and per mask of
stages reached). The same purchases per product are `products.py`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime

from sqlalchemy.engine import Connection

from engine.store.tallies import TallyRow, tally_rows
from engine.store.tally_sql import REACHED

# The funnel's main stages, in order: each one's conversion is taken over the one before.
MAIN_STAGES = ("signed_up", "confirmed", "answered", "nurture", "sales", "purchased", "customers")
# The counts made of `enrollment.reached` bits, beside signed_up (every enrollment).
_COUNTED = ("signed_up", *REACHED)
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
    rows = tally_rows(conn, funnel, since, ("cohort", "revenue", "answer"))
    found: dict[str, FunnelNumbers] = {}
    for group in _groups(rows):
        numbers = found.setdefault(group.funnel, FunnelNumbers(group.funnel))
        numbers.totals += group.counts
        numbers.segments[group.segment] = numbers.segments.get(group.segment, StageCounts()) + group.counts
        source = numbers.sources.setdefault((group.source, group.utm_source), SourceNumbers())
        source.counts += group.counts
        add_money(source.revenue, group.revenue)
        add_money(numbers.revenue, group.revenue)
        numbers.purchases += group.purchases
    for answer in _answers(rows):
        found.setdefault(answer.funnel, FunnelNumbers(answer.funnel)).answers.append(answer)
    return found


def cohort_groups(
    conn: Connection, funnel: str | None = None, since: datetime | None = None
) -> list[CohortGroup]:
    """The cohort's stage counts and purchases per (funnel, segment, source, utm_source)."""
    return _groups(tally_rows(conn, funnel, since, ("cohort", "revenue")))


def latest_answers(
    conn: Connection, funnel: str | None = None, since: datetime | None = None
) -> list[AnswerCount]:
    """Per (funnel, question, answer): the cohort's subscribers whose latest answer to it that is."""
    return _answers(tally_rows(conn, funnel, since, ("answer",)))


# (funnel, segment, source, utm_source)
_Group = tuple[str, str | None, str | None, str | None]


def _groups(rows: list[TallyRow]) -> list[CohortGroup]:
    """The cohort and revenue tallies (per signup day and `reached` mask) added up per group."""
    counts: dict[_Group, dict[str, int]] = {}
    revenue: dict[_Group, Money] = {}
    purchases: dict[_Group, int] = {}
    for row in rows:
        key: _Group = (row.funnel, row.k1 or None, row.k2 or None, row.k3 or None)
        if row.kind == "cohort":
            mask, values = int(row.k4), counts.setdefault(key, dict.fromkeys(_COUNTED, 0))
            values["signed_up"] += row.n
            for name, bit in REACHED.items():
                if mask & bit:
                    values[name] += row.n
        elif row.kind == "revenue":
            purchases[key] = purchases.get(key, 0) + row.n
            if row.priced:  # purchases without an amount count, and add no money
                add_money(revenue.setdefault(key, {}), {row.k4: row.amount})
    return [
        CohortGroup(key[0], key[1], key[2], key[3], counts=StageCounts(**values),
                    revenue=revenue.get(key, {}), purchases=purchases.get(key, 0))
        for key, values in sorted(counts.items(), key=lambda item: tuple(str(k) for k in item[0]))
        if values["signed_up"]
    ]


def _answers(rows: list[TallyRow]) -> list[AnswerCount]:
    summed: dict[tuple[str, str, str], int] = {}
    for row in rows:
        if row.kind == "answer":
            key = (row.funnel, row.k1, row.k2)
            summed[key] = summed.get(key, 0) + row.n
    return [AnswerCount(*key, count) for key, count in sorted(summed.items()) if count]


def add_money(total: Money, more: Mapping[str, float]) -> None:
    """Add `more` to `total`, per currency, rounded against float noise."""
    for currency, amount in more.items():
        total[currency] = round(total.get(currency, 0.0) + amount, _DECIMALS)
