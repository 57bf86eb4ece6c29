"""Warm-up: how much marketing mail a new sending domain may send today, ramped day by day.

Receivers judge a domain they have never seen by its first weeks: thousands of emails on
day one look like a spammer's fresh domain, the same volume reached over two weeks like
a growing list. The schedule gives the marketing volume of day 1, 2, 3... (UTC days from
`warmup_start`); after its last day there is no limit. The day's count comes from the
database, so every daemon sharing it spends the same allowance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.engine import Connection

from engine.store.counts import marketing_volume_since, serialize_warmup_claims

_EXAMPLE = "50,100,200,400,800,1500,3000,5000"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_schedule(text: str) -> tuple[int, ...]:
    """`50,100,200` as (50, 100, 200); ValueError says what to write."""
    days: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():  # also refuses "", "-5", "1.5"
            raise ValueError(
                f"'{part}' is not a whole number of emails; write the daily volumes of day 1, 2, 3... "
                f"separated by commas, e.g. {_EXAMPLE}"
            )
        days.append(int(part))
    return tuple(days)


def parse_start(text: str) -> date:
    """`2026-03-02` as a date; ValueError says what to write."""
    try:
        if not _DATE.fullmatch(text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date; write the UTC day of warm-up day 1 as YYYY-MM-DD, e.g. 2026-03-02"
        ) from None


def midnight(now: datetime) -> datetime:
    """The start of `now`'s UTC day."""
    return datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)


@dataclass(frozen=True)
class Warmup:
    """A warm-up schedule: daily marketing volumes from `start` (day 1) on."""

    schedule: tuple[int, ...]
    start: date

    @classmethod
    def parse(cls, schedule: str, start: str | None) -> Warmup | None:
        """The settings' warm-up (`warmup_schedule`, `warmup_start`), or None when there is none."""
        if not schedule.strip():
            return None
        if not start:
            raise ValueError("warmup_schedule is set but warmup_start is not; write the UTC date of day 1")
        return cls(parse_schedule(schedule), parse_start(start))

    def day(self, now: datetime) -> int:
        """Which warm-up day `now` is in (1 before the start too: an early start is a cautious one)."""
        return max(1, (now.astimezone(UTC).date() - self.start).days + 1)

    def limit(self, now: datetime) -> int | None:
        """Today's marketing volume, or None once the schedule is over."""
        day = self.day(now)
        return self.schedule[day - 1] if day <= len(self.schedule) else None

    def remaining(self, conn: Connection, now: datetime) -> int | None:
        """Marketing emails still allowed today (0 or more), or None when there is no limit.

        Call it in the transaction that claims the work it will spend the allowance on.
        """
        limit = self.limit(now)
        if limit is None:
            return None
        serialize_warmup_claims(conn)
        return max(0, limit - marketing_volume_since(conn, midnight(now), now))

    @staticmethod
    def next_day(now: datetime) -> datetime:
        """When a new allowance starts: the next UTC midnight."""
        return midnight(now) + timedelta(days=1)
