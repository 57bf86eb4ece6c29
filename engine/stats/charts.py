"""The numbers of the charts over time: a funnel's, an email's or a broadcast's activity per day or week.

What each number counts is `engine/store/daily_sql.py`'s (docs/stats.md, "Charts over
time"); days are UTC days, as every time the engine stores (no setting gives a funnel a
time zone of its own). A range of up to `DAILY_UP_TO` days is drawn day by day; a longer
one week by week, each week starting on the range's first day. The guardrail pauses come
as spans in the same units, so the page can shade them where they happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from engine.sequences.plan import BroadcastPlan
from engine.store import broadcasts as calendar
from engine.store import daily
from engine.store.broadcast_stats import attributed_by_day
from engine.store.db import DbConnection

DEFAULT_DAYS = 30  # the range shown when none is chosen: the last 30 days, today included
DAILY_UP_TO = 92  # longer ranges are drawn by the week
MAX_DAYS = 1096  # three years: a range's read and its drawing stay small
COUNTS = ("signups", "confirmations", "sent", "opened", "clicked", "unsubscribed", "complained")
DATE_HELP = "write a date as YYYY-MM-DD, like 2026-03-01"


@dataclass(frozen=True)
class Span:
    """A pause of a step, in bucket units (bucket i spans [i, i + 1)), and in words."""

    step: str
    start: float
    end: float
    paused_at: datetime
    resumed_at: datetime | None  # None: still paused
    detail: str


@dataclass(frozen=True)
class Activity:
    """The counts of each bucket (a day, or a week from `starts[i]`), revenue per currency, pauses."""

    first: date
    last: date
    unit: str  # day|week
    starts: list[date]
    counts: dict[str, list[int]]
    revenue: dict[str, list[float]] = field(default_factory=dict)  # currency ('' for none) -> per bucket
    purchases: list[int] = field(default_factory=list)
    pauses: list[Span] = field(default_factory=list)

    def ends(self) -> list[date]:
        """The last day of each bucket."""
        step = timedelta(days=1 if self.unit == "day" else 7)
        return [min(start + step - timedelta(days=1), self.last) for start in self.starts]

    def total(self, metric: str) -> int:
        """A count over the whole range."""
        return sum(self.counts.get(metric, []))


def date_range(first: str | None, last: str | None, today: date) -> tuple[date, date]:
    """The range `?from=` and `?to=` choose (both days included), the last 30 days by default.

    ValueError says what is wrong and what to write instead.
    """
    end = _parse("to", last) if last else today
    start = _parse("from", first) if first else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ValueError(
            f"'from' ({start}) is after 'to' ({end}): choose a 'from' date on or before the 'to' date"
        )
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise ValueError(
            f"{start} to {end} is {days:,} days; a chart shows at most {MAX_DAYS:,} days "
            f"(three years): choose a later 'from' date, like {end - timedelta(days=MAX_DAYS - 1)}"
        )
    return start, end


def _parse(name: str, text: str) -> date:
    text = text.strip()[:40]
    try:
        if len(text) == 10:  # not Python's other forms ('20260301'): the form's date field sends this one
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"'{name}' is '{text}', which is not a date; {DATE_HELP}")


def _buckets(first: date, last: date) -> tuple[str, list[date]]:
    days = (last - first).days + 1
    if days <= DAILY_UP_TO:
        return "day", [first + timedelta(days=i) for i in range(days)]
    return "week", [first + timedelta(days=i) for i in range(0, days, 7)]


def _index(first: date, unit: str, day: date) -> int:
    return (day - first).days // (1 if unit == "day" else 7)


def activity(
    conn: DbConnection, funnel: str, first: date, last: date, now: datetime, step: str | None = None
) -> Activity:
    """A funnel's (or one email's) counts and revenue per bucket from `first` to `last`, with its pauses."""
    unit, starts = _buckets(first, last)
    counts = {metric: [0] * len(starts) for metric in COUNTS}
    revenue: dict[str, list[float]] = {}
    purchases = [0] * len(starts)
    for found in daily.day_counts(conn, funnel, first, last, step):
        i = _index(first, unit, found.day)
        if found.metric == "revenue":
            revenue.setdefault(found.currency, [0.0] * len(starts))[i] += found.amount
            purchases[i] += found.n
        elif found.metric in counts:
            counts[found.metric][i] += found.n
    spans = _spans(
        daily.marks(conn, funnel, _midnight(last + timedelta(days=1)), step), first, last, unit, now
    )
    return Activity(first, last, unit, starts, counts, _rounded(revenue), purchases, spans)


def broadcast_activity(
    conn: DbConnection, broadcast: BroadcastPlan, first: date, last: date, now: datetime
) -> Activity:
    """A broadcast's email's counts per bucket, and the purchases attributed to it (within its
    attribution window after each recipient's email) on the days they were made."""
    funnel = calendar.mail_funnel(broadcast, calendar.row(conn, broadcast.id))
    found = activity(conn, funnel, first, last, now, step=broadcast.id)
    revenue: dict[str, list[float]] = {}
    purchases = [0] * len(found.starts)
    bought = attributed_by_day(
        conn,
        funnel,
        broadcast.id,
        broadcast.attribution,
        _midnight(first),
        _midnight(last + timedelta(days=1)),
    )
    for day, currency, n, amount in bought:
        i = _index(first, found.unit, day)
        revenue.setdefault(currency, [0.0] * len(found.starts))[i] += amount
        purchases[i] += n
    return replace(found, revenue=_rounded(revenue), purchases=purchases)


def _rounded(revenue: Mapping[str, list[float]]) -> dict[str, list[float]]:
    return {currency: [round(v, 2) for v in values] for currency, values in sorted(revenue.items())}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _spans(marks: list[daily.Mark], first: date, last: date, unit: str, now: datetime) -> list[Span]:
    """Pauses that held during the range, from the history of pauses and resumes (oldest first)."""
    start, end = _midnight(first), _midnight(last + timedelta(days=1))
    size = timedelta(days=1 if unit == "day" else 7)
    open_: dict[str, daily.Mark] = {}
    held: list[tuple[daily.Mark, datetime | None]] = []
    for mark in marks:
        if mark.action == "paused":
            open_.setdefault(mark.step, mark)
        elif mark.action == "resumed" and mark.step in open_:
            held.append((open_.pop(mark.step), mark.at))
    held.extend((mark, None) for mark in open_.values())
    spans = []
    for paused, resumed in sorted(held, key=lambda h: h[0].at):
        until = resumed or now
        if until < start or paused.at >= end:
            continue
        words = f"{paused.step} paused {paused.at:%Y-%m-%d %H:%M} UTC"
        if paused.detail:
            words += f" ({paused.metric}: {paused.detail})" if paused.metric else f" ({paused.detail})"
        words += f", resumed {resumed:%Y-%m-%d %H:%M} UTC" if resumed else ", still paused"
        spans.append(
            Span(
                paused.step,
                (max(paused.at, start) - start) / size,
                (min(until, end) - start) / size,
                paused.at,
                resumed,
                words,
            )
        )
    return spans
