"""Dates in templates: the send time and deadlines in the subscriber's zone, written in their language.

With numbers.py, the only module that imports Babel: its CLDR data knows how each locale writes a date
("Friday, December 12" in en, "Freitag, 12. Dezember" in de), which no format string
written by hand can. Templates get `sent_at` (a `Moment`), `deadline(days=3)` and the
`date`, `time` and `datetime` filters; docs/sequence-files.md shows them to marketers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from jinja2 import pass_context
from jinja2.runtime import Context

from engine.sequences.window import zone

__all__ = ["FILTERS", "GLOBALS", "NAMES", "Moment", "Span", "deadline"]

FALLBACK = "en"
STANDARD = ("short", "medium", "long", "full")
# Named formats built from CLDR's skeletons, so each locale orders and punctuates them
# its own way: "weekday" is "Friday, December 12" in en, "Friday 12 December" in en_GB.
_SKELETONS = {"weekday": "MMMMEd", "day": "MMMMd", "month": "yMMMM"}
_FORMAT_FIX = ("write short, medium, long, full, weekday, day or month, or a pattern "
               "like 'EEEE d MMMM' (docs/sequence-files.md, 'Dates')")
# The template names that make an email's text depend on when it is sent.
NAMES = frozenset({"sent_at", "deadline"})


@lru_cache(maxsize=256)
def locale_of(name: str) -> Locale:
    """Babel's Locale for a subscriber's `locale` field ('de', 'pt-BR', 'en_GB'); English when unknown."""
    try:
        return Locale.parse((name or FALLBACK).replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(FALLBACK)


@dataclass(frozen=True)
class Span:
    """A length of time as a template writes it: `days(3)`, `hours(12)`, `weeks(1)`.

    Kept apart from timedelta because `days(1)` (the same time tomorrow) and `hours(24)`
    differ on the day the clocks change.
    """

    days: float = 0
    hours: float = 0

    def __add__(self, other: object) -> Span:
        if not isinstance(other, Span):
            return NotImplemented
        return Span(self.days + other.days, self.hours + other.hours)

    def __neg__(self) -> Span:
        return Span(-self.days, -self.hours)

    def __str__(self) -> str:
        return f"{self.days:g} days, {self.hours:g} hours"


@dataclass(frozen=True)
class Moment:
    """A point in time as one subscriber reads it: in their time zone, written in their locale."""

    at: datetime  # aware, in the subscriber's zone
    locale: str

    @classmethod
    def of(cls, when: datetime, locale: str, timezone: str) -> Moment:
        """`when` (aware, or naive UTC) seen from `timezone`; an unknown zone is UTC."""
        aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        return cls(aware.astimezone(zone(timezone)), locale)

    def plus(self, days: float = 0, hours: float = 0, weeks: float = 0) -> Moment:
        """This moment moved on: days and weeks on the local calendar, hours on the clock.

        "3 days later" keeps the time of day across a clock change (10:00 stays 10:00),
        as a reader expects of a deadline; 72 hours would land at 09:00 or 11:00.
        """
        local = self.at
        calendar_days = days + 7 * weeks
        if calendar_days:
            tz = local.tzinfo
            assert isinstance(tz, ZoneInfo)
            wall = local.replace(tzinfo=None) + timedelta(days=calendar_days)
            # Through UTC and back: a wall time the clock skipped (02:30 on the spring
            # change) becomes the real time it denotes.
            local = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
        if hours:
            local = (local.astimezone(UTC) + timedelta(hours=hours)).astimezone(local.tzinfo)
        return Moment(local, self.locale)

    def __add__(self, span: object) -> Moment:
        if isinstance(span, Span):
            return self.plus(days=span.days, hours=span.hours)
        if isinstance(span, timedelta):
            return self.plus(hours=span / timedelta(hours=1))
        return NotImplemented

    def __sub__(self, span: object) -> Moment:
        if isinstance(span, (Span, timedelta)):
            return self + (-span)
        return NotImplemented

    @property
    def year(self) -> int:
        """The year, for '© {{ sent_at.year }}'."""
        return self.at.year

    def key(self) -> tuple[object, ...]:
        """What its text depends on, to the minute: emails sent in one minute share a skeleton."""
        return (self.locale, str(self.at.tzinfo), self.at.replace(second=0, microsecond=0))

    def __str__(self) -> str:
        return format_date_value(self, "long")


def _split(value: Any, context: Context | None, filter_name: str) -> tuple[datetime | date, Locale]:
    """The value to format and the locale to write it in: a Moment's own, else the email's."""
    if isinstance(value, Moment):
        return value.at, locale_of(value.locale)
    sent = context.get("sent_at") if context is not None else None
    locale = locale_of(sent.locale if isinstance(sent, Moment) else FALLBACK)
    if isinstance(value, datetime) and isinstance(sent, Moment):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=sent.at.tzinfo)
        return aware.astimezone(sent.at.tzinfo), locale
    if isinstance(value, date):
        return value, locale
    if isinstance(value, (Span, timedelta)):
        raise ValueError(f"'{filter_name}' got a length of time ({value}), not a date; put the "
                         f"sum in brackets, like {{{{ (sent_at + days(3)) | {filter_name} }}}}, "
                         f"or write {{{{ deadline(days=3) | {filter_name} }}}}")
    raise ValueError(f"'{filter_name}' needs a date, like sent_at or deadline(days=3), "
                     f"not {type(value).__name__} {value!r}")


def _pattern(fmt: str, locale: Locale) -> str:
    """A named format's CLDR pattern for `locale`; any other text is a pattern already."""
    if fmt in STANDARD:
        return fmt
    skeleton = _SKELETONS.get(fmt)
    if skeleton is None:
        return fmt
    pattern = str(locale.datetime_skeletons.get(skeleton, locale.date_formats["long"]))
    # CLDR's "weekday" patterns abbreviate the day (Fri); a reader is told the whole name.
    # Quoted text ('de' in pt) is literal and left as it is.
    parts = pattern.split("'")
    parts[::2] = [re.sub(r"E+", "EEEE", part) for part in parts[::2]]
    return "'".join(parts)


def format_date_value(value: Any, fmt: str = "long", context: Context | None = None) -> str:
    """`value` as a date: a named format or a CLDR pattern, in the subscriber's locale."""
    when, locale = _split(value, context, "date")
    pattern = _pattern(fmt, locale)
    try:
        if isinstance(when, datetime) and fmt not in STANDARD:
            # A pattern may hold the time too ('EEEE d MMMM, HH:mm'); format_date drops it.
            return str(format_datetime(when, pattern, tzinfo=when.tzinfo, locale=locale))
        return str(format_date(when, pattern, locale=locale))
    except Exception as exc:  # Babel raises many kinds for a pattern it cannot use
        raise ValueError(f"date format '{fmt}' does not work ({exc}); {_FORMAT_FIX}") from exc


@pass_context
def _date(context: Context, value: Any, fmt: str = "long") -> str:
    return format_date_value(value, fmt, context)


@pass_context
def _time(context: Context, value: Any, fmt: str = "short") -> str:
    return _with_time_of_day(context, value, fmt, "time", format_time, "HH:mm")


@pass_context
def _datetime(context: Context, value: Any, fmt: str = "medium") -> str:
    return _with_time_of_day(context, value, fmt, "datetime", format_datetime, "EEEE d MMMM HH:mm")


def _with_time_of_day(context: Context, value: Any, fmt: str, name: str,
                      formatter: Callable[..., Any], example: str) -> str:
    """`time` and `datetime`: a moment with its time of day, in the subscriber's zone and locale."""
    when, locale = _split(value, context, name)
    if not isinstance(when, datetime):
        raise ValueError(f"'{name}' needs a moment with a time of day, like sent_at")
    try:
        return str(formatter(when, fmt, tzinfo=when.tzinfo, locale=locale))
    except Exception as exc:  # Babel raises many kinds for a pattern it cannot use
        raise ValueError(f"{name} format '{fmt}' does not work ({exc}); write short, medium, "
                         f"long, full or a pattern like '{example}'") from exc


@pass_context
def deadline(context: Context, days: float = 0, hours: float = 0, weeks: float = 0) -> Moment:
    """The send time moved on: `deadline(days=3)` is three days after this email goes out."""
    sent = context.get("sent_at")
    if not isinstance(sent, Moment):
        raise ValueError("deadline() needs the send time (sent_at) in the template's variables")
    return sent.plus(days=days, hours=hours, weeks=weeks)


def _days(n: float) -> Span:
    return Span(days=n)


def _hours(n: float) -> Span:
    return Span(hours=n)


def _weeks(n: float) -> Span:
    return Span(days=7 * n)


FILTERS = {"date": _date, "time": _time, "datetime": _datetime}
GLOBALS = {"deadline": deadline, "days": _days, "hours": _hours, "weeks": _weeks}
