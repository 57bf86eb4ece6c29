"""The sending policy: how much mail may go now, and which claimed message must wait.

Five limits, checked in this order: the global send rate (how many deliveries a tick
claims), the send window (marketing mail, except an `anytime` email, waits for it rather
than arrive at night), a domain that answered 421 (it refuses mail for a while), today's
warm-up allowance (engine/scheduler/warmup.py) and the per-domain rate
(engine/scheduler/throttle.py).
A message held by the last two is not attempted: it waits, and its share of the global
rate goes to the next claim (docs/delivery.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from engine.logs import log
from engine.scheduler.outcomes import Claimed, DeliveryUpdate, later
from engine.scheduler.throttle import DomainThrottle, recipient_domain
from engine.scheduler.warmup import Warmup
from engine.sequences.plan import EmailStep, PathKind, Plan
from engine.store.db import DbConnection


class RateLimiter:
    """A token bucket in real seconds: `rate` per second, bursts of at most `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock  # real seconds; tests hand in their own
        self._tokens = self.burst
        self._at = clock()

    def take(self, wanted: int) -> int:
        """Take up to `wanted` whole tokens; returns how many were taken."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def give_back(self, unused: int) -> None:
        """Return tokens taken but not used."""
        self._tokens = min(self.burst, self._tokens + unused)


class SendPolicy:
    """The global rate, the send window, 421 pauses, the warm-up and per-domain rates, in one place."""

    def __init__(
        self,
        limiter: RateLimiter,
        throttle: DomainThrottle | None = None,
        warmup: Warmup | None = None,
        clock_scale: float = 1.0,
    ) -> None:
        self.limiter = limiter
        self.throttle = throttle  # per recipient domain; None: no per-domain limit
        self.warmup = warmup
        # Clock seconds a real second (--time-scale): a rate's wait, counted in real seconds,
        # is written as a time of the engine's clock.
        self.clock_scale = clock_scale
        self.paused_domains: dict[str, datetime] = {}  # 421: this destination refuses for a while
        self._warmup_left: int | None = None  # marketing emails today's warm-up still allows
        self._warmup_logged_until: datetime | None = None  # the day `warmup_limit` was logged for

    def count_warmup(self, conn: DbConnection, now: datetime) -> None:
        """Read what today's warm-up still allows; call it in the transaction that claims."""
        # Counted before the claim, in its transaction: the day's volume without this batch.
        self._warmup_left = self.warmup.remaining(conn, now) if self.warmup else None

    def hold(self, row: Claimed, plan: Plan, email: EmailStep, now: datetime) -> DeliveryUpdate | None:
        """The update that makes `row` (its `email` of `plan`) wait, or None when it may be sent now."""
        windowed = row["marketing"] and _windowed(plan, email)
        if windowed and plan.window and not plan.window.contains(now, row["timezone"]):
            # Late (downtime, a backlog): wait for the window rather than arrive at night.
            return later(row, plan.window.next_open(now, row["timezone"]), now, "waiting for the send window")
        return self.paused(row, now) or self._spent(row, now)

    def paused(self, row: Claimed, now: datetime) -> DeliveryUpdate | None:
        """The update that makes `row` wait because its domain answered 421, or None.

        Asked again right before the send: a message composed ahead of its turn must not
        be tried at a domain that answered 421 meanwhile.
        """
        if not self.paused_domains:
            return None
        domain = recipient_domain(row["email"])
        paused = self.paused_domains.get(domain)
        if paused and paused > now:
            return later(row, paused, now, f"{domain} answered 421; waiting")
        return None

    def _spent(self, row: Claimed, now: datetime) -> DeliveryUpdate | None:
        """The update that holds `row` back (no attempt) if today's warm-up or its domain's rate is spent."""
        left = self._warmup_left if row["marketing"] else None  # None: the warm-up does not apply
        if left is not None and left <= 0 and self.warmup is not None:
            day, volume, until = self.warmup.day(now), self.warmup.limit(now), self.warmup.next_day(now)
            if self._warmup_logged_until != until:  # once a day
                self._warmup_logged_until = until
                log("warmup_limit", day=day, volume=volume, resumes_at=until.isoformat())
            reply = f"waiting: warm-up day {day} allows {volume} marketing emails; used up"
            return later(row, until, now, reply).holding("warmup")
        if self.throttle is not None:
            domain = recipient_domain(row["email"])
            wait = self.throttle.take(domain)
            if wait > 0:
                reply = f"throttled: {domain} takes {self.throttle.rate_for(domain):g} emails a second"
                at = now + timedelta(seconds=wait * self.clock_scale)
                return later(row, at, now, reply).holding("throttle", domain)
        return None

    def spend(self, row: Claimed) -> None:
        """Count one message that is to go against today's warm-up (marketing mail only).

        Counted when the message is composed to go, before any later message is checked:
        composed ahead of their sends, no two can take the last one.
        """
        if row["marketing"] and self._warmup_left is not None:
            self._warmup_left -= 1

    def unspend(self, row: Claimed) -> None:
        """Give back what `spend` and the domain's rate counted for a message that did not go after all."""
        if row["marketing"] and self._warmup_left is not None:
            self._warmup_left += 1
        if self.throttle is not None:
            self.throttle.give_back(recipient_domain(row["email"]))

    def pause(self, domain: str, until: datetime) -> None:
        """Send nothing to `domain` before `until` (it answered 421)."""
        self.paused_domains[domain] = until


def _windowed(plan: Plan, email: EmailStep) -> bool:
    """Whether a marketing email waits for the send window: unless `anytime`, or a broadcast whose
    file says `window: ignore`."""
    broadcast = plan.broadcast(email.id) if email.path is PathKind.BROADCAST else None
    return broadcast.use_window if broadcast is not None else not email.anytime
