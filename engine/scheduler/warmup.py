"""Warm-up: how much marketing mail a new sending domain may send today, ramped day by day.

Receivers judge a domain they have never seen by its first weeks: thousands of emails on
day one look like a spammer's fresh domain, the same volume reached over two weeks like
a growing list. The schedule gives the marketing volume of day 1, 2, 3... (UTC days from
`warmup_start`); after its last day there is no limit. The day's count comes from the
database, so every daemon sharing it spends the same allowance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from engine.store.counts import marketing_volume_since, serialize_warmup_claims
from engine.store.db import DbConnection


def midnight(now: datetime) -> datetime:
    """The start of `now`'s UTC day."""
    return datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)


@dataclass(frozen=True)
class Warmup:
    """A warm-up schedule: daily marketing volumes from `start` (day 1) on."""

    schedule: tuple[int, ...]
    start: date

    def day(self, now: datetime) -> int:
        """Which warm-up day `now` is in (1 before the start too: an early start is a cautious one)."""
        return max(1, (now.astimezone(UTC).date() - self.start).days + 1)

    def limit(self, now: datetime) -> int | None:
        """Today's marketing volume, or None once the schedule is over."""
        day = self.day(now)
        return self.schedule[day - 1] if day <= len(self.schedule) else None

    def remaining(self, conn: DbConnection, now: datetime) -> int | None:
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
