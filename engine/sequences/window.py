"""Send windows and frequency caps, evaluated in the subscriber's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for `name`; UTC for a name the tz database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class SendWindow:
    """Local days of the week and a [start, end) time of day when marketing mail may go out."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    text: str = ""

    def contains(self, at: datetime, tz: str) -> bool:
        """True when the UTC instant `at` falls inside the window in zone `tz`."""
        local = at.astimezone(zone(tz))
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_open(self, at: datetime, tz: str) -> datetime:
        """The first UTC instant at or after `at` that lies inside the window."""
        if self.contains(at, tz):
            return at
        tzinfo = zone(tz)
        day = at.astimezone(tzinfo).date()
        # 8 days always reach an allowed weekday; DST gaps can swallow a whole
        # window on one day, so look a further week ahead before giving up.
        for offset in range(15):
            candidate_day = day + timedelta(days=offset)
            if candidate_day.weekday() not in self.days:
                continue
            opening = _local_to_utc(candidate_day, self.start, tzinfo)
            candidate = max(opening, at)
            if self.contains(candidate, tz):
                return candidate
        raise ValueError(f"send window '{self.text}' never opens")  # pragma: no cover


@dataclass(frozen=True)
class FrequencyCap:
    """At most `limit` marketing emails per local calendar `period` ('day' or 'week')."""

    limit: int
    period: str
    text: str = ""

    def next_allowed(self, sent: tuple[datetime, ...], now: datetime, tz: str) -> datetime:
        """`now` if one more email fits the cap, else the start of the next period (UTC)."""
        tzinfo = zone(tz)
        current = self._period_start(now.astimezone(tzinfo).date())
        used = sum(1 for s in sent if self._period_start(s.astimezone(tzinfo).date()) == current)
        if used < self.limit:
            return now
        length = timedelta(days=7 if self.period == "week" else 1)
        return _local_to_utc(current + length, time(0, 0), tzinfo)

    def _period_start(self, day: date) -> date:
        if self.period == "week":
            return day - timedelta(days=day.weekday())
        return day


def _local_to_utc(day: date, clock: time, tzinfo: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=tzinfo).astimezone(UTC)
