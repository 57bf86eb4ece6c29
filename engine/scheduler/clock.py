"""The injectable clock: real time, real time N times faster, or frozen for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# The shortest real interval between ticks under a fast clock: at 3600x a one-second
# tick would be an hour of clock time, so the demo's tick follows the clock down to this.
MIN_TICK_SECONDS = 0.05


class Clock(Protocol):
    """Tells the engine what time it is (UTC, aware)."""

    def now(self) -> datetime:
        """The current instant."""
        ...  # pragma: no cover


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The current instant."""
        return datetime.now(UTC)


class ScaledClock:
    """A clock that was the real time at `since` and runs `scale` times faster (`funnel run --time-scale`).

    Every daemon and command on one database builds it from the same `since` (the database's
    clock mark, engine/store/meta.py), so they agree on the time to the millisecond: a lease one
    daemon writes is read by another on the same clock.
    """

    def __init__(self, scale: float, since: datetime | None = None) -> None:
        self.scale = scale
        self.since = since or datetime.now(UTC)

    def now(self) -> datetime:
        """The scaled instant."""
        return self.since + (datetime.now(UTC) - self.since) * self.scale


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The frozen instant."""
        return self.at

    def advance(self, by: timedelta) -> datetime:
        """Move on by `by`; returns the new instant."""
        self.at += by
        return self.at


def scale_of(clock: Clock) -> float:
    """How many clock seconds pass in one real second: 1 but for a ScaledClock."""
    return clock.scale if isinstance(clock, ScaledClock) else 1.0


def real_time(clock: Clock, seconds: float) -> timedelta:
    """`seconds` of real time as a span of `clock`'s time.

    Leases are written in clock time but must last in real time: a 300 s delivery lease
    at --time-scale 3600 would otherwise end after 83 ms, while the SMTP server is still
    answering, and another daemon would send the message again.
    """
    return timedelta(seconds=seconds * scale_of(clock))


def tick_interval(clock: Clock, tick_seconds: float) -> float:
    """Real seconds between ticks: `tick_seconds` of clock time, at least MIN_TICK_SECONDS."""
    return max(MIN_TICK_SECONDS, tick_seconds / scale_of(clock))


def clock_mark(clock: Clock) -> dict[str, Any]:
    """What the database's "clock" mark says about `clock`: {"kind": "real"} or the fast clock's scale."""
    if isinstance(clock, ScaledClock):
        return {"kind": "fast", "scale": clock.scale, "since": clock.since.isoformat()}
    return {"kind": "real"}


def marked_clock(mark: dict[str, Any] | None) -> Clock | None:
    """The clock a "clock" mark names when it is a --time-scale demo's (the one that started the
    database's fast time); None for a real-time database or one without a mark."""
    if mark is not None and mark.get("kind") == "fast":
        return ScaledClock(float(mark["scale"]), datetime.fromisoformat(str(mark["since"])))
    return None


def describe_mark(mark: dict[str, Any]) -> str:
    """A mark in words: 'a real-time run' or 'a --time-scale 3600 demo'."""
    if mark.get("kind") == "fast":
        return f"a --time-scale {float(mark.get('scale', 0)):g} demo"
    return "a real-time run"
