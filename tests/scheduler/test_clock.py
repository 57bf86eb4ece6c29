"""A fast clock: what scales with it (the tick) and what does not (leases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.scheduler.clock import (
    FrozenClock,
    ScaledClock,
    SystemClock,
    clock_mark,
    real_time,
    tick_interval,
)


def test_a_lease_lasts_the_same_real_time_under_any_clock() -> None:
    # 300 s at 3600x was 83 ms of real time: another daemon took the message over mid-send.
    assert real_time(ScaledClock(3600), 300) == timedelta(seconds=300 * 3600)
    assert real_time(SystemClock(), 300) == timedelta(seconds=300)
    assert real_time(FrozenClock(datetime(2026, 3, 2, tzinfo=UTC)), 300) == timedelta(seconds=300)


def test_the_tick_follows_the_clock_down_to_a_twentieth_of_a_second() -> None:
    assert tick_interval(SystemClock(), 1.0) == 1.0
    assert tick_interval(ScaledClock(10), 1.0) == 0.1
    assert tick_interval(ScaledClock(3600), 1.0) == 0.05  # not 1/3600 s: a tick takes longer than that
    assert tick_interval(ScaledClock(3600), 600.0) == 600.0 / 3600


def test_clocks_built_from_one_mark_agree_whenever_they_start() -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    first, later = ScaledClock(3600, since), ScaledClock(3600, since)
    assert abs(first.now() - later.now()) < timedelta(seconds=3600 * 0.05)
    assert first.now() - since > timedelta(seconds=2 * 3600 - 1)  # two real seconds: two hours
    assert clock_mark(first) == {"kind": "fast", "scale": 3600, "since": since.isoformat()}
    assert clock_mark(SystemClock()) == {"kind": "real"}
