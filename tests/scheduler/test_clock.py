"""A fast clock: what scales with it (the tick) and what does not (leases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.scheduler.clock import (
    FrozenClock,
    ScaledClock,
    SystemClock,
    clock_mark,
    real_time,
    tick_interval,
)
from engine.scheduler.policy import RateLimiter, SendPolicy
from engine.scheduler.throttle import DomainThrottle


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


def _throttled_wait(clock_scale: float) -> timedelta:
    """How far ahead, in clock time, the second of two emails to a 1-a-second domain is held."""
    seconds = [0.0]  # the throttle's real seconds, moved by hand
    throttle = DomainThrottle(1.0, clock=lambda: seconds[0])
    policy = SendPolicy(RateLimiter(100, 100), throttle, clock_scale=clock_scale)
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    rows = [
        {"id": i, "email": f"r{i}@slow.test", "marketing": False, "attempts": 0, "last_code": None,
         "last_reply": None, "first_attempt_at": None, "subscriber_id": i}
        for i in (1, 2)
    ]
    plan: Any = None  # a transactional email: neither the plan's window nor the step is read
    assert policy.hold(rows[0], plan, plan, now) is None
    held = policy.hold(rows[1], plan, plan, now)
    assert held is not None and held.held == "throttle" and held.next_attempt_at is not None
    return held.next_attempt_at - now


def test_a_domain_rate_holds_for_real_seconds_under_a_fast_clock() -> None:
    assert _throttled_wait(1.0) == timedelta(seconds=1)
    # One real second is an hour of a 3600x clock: held for 1/3600 s of clock time, the
    # email came back every tick only to be held again.
    assert _throttled_wait(3600.0) == timedelta(hours=1)
