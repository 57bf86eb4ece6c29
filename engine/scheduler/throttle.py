"""Per-destination-domain send rates: one token bucket per recipient domain, in this process.

The global `send_rate` bucket (policy.RateLimiter) gates how many deliveries a tick
claims; this one decides, message by message, whether its recipient's domain may take
another one now. A message that may not is not sent and not counted as an attempt: the
dispatcher puts it back to wait until the time `take` names (docs/delivery.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Buckets kept at most. A bucket idle for a second is full again, so forgetting the least
# recently used one loses nothing but a partly spent burst; 10,000 buckets are about 2 MB.
MAX_DOMAINS = 10_000

def recipient_domain(address: str) -> str:
    """The domain an address's mail goes to, as buckets are keyed."""
    return address.rpartition("@")[2].lower().rstrip(".")


@dataclass
class _Bucket:
    tokens: float
    at: float  # when `tokens` was last brought up to date (the throttle's clock)
    promised: float  # the latest time handed to a message told to wait


class DomainThrottle:
    """Token buckets per recipient domain: `rate` emails per second, bursts of `burst_seconds` of it.

    Rates at or above `ceiling` (the global send rate) are never checked: the global
    bucket already keeps every domain below them.
    """

    def __init__(
        self,
        rate: float,
        overrides: Mapping[str, float] | None = None,
        burst_seconds: float = 1.0,
        ceiling: float = float("inf"),
        clock: Callable[[], float] = time.monotonic,
        max_domains: int = MAX_DOMAINS,
    ) -> None:
        self.rate = rate
        self.overrides = dict(overrides or {})
        self.burst_seconds = burst_seconds
        self.ceiling = ceiling
        self.clock = clock  # real seconds; tests hand in their own
        self.max_domains = max_domains
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def rate_for(self, domain: str) -> float:
        """Emails per second allowed to `domain`; 0 means no limit."""
        rate = self.overrides.get(domain, self.rate)
        return 0.0 if rate >= self.ceiling else rate

    def take(self, domain: str) -> float:
        """Take a token for one message to `domain`: 0.0 if it may go now, else seconds to wait.

        Messages told to wait get successive slots (1/rate apart), so a backlog to one
        domain comes back spread out instead of all at once.
        """
        rate = self.rate_for(domain)
        if rate <= 0:
            return 0.0
        now = self.clock()
        burst = self._burst(rate)
        bucket = self._buckets.pop(domain, None)
        if bucket is None:
            bucket = _Bucket(burst, now, float("-inf"))
            while len(self._buckets) >= self.max_domains:
                self._buckets.popitem(last=False)
        self._buckets[domain] = bucket  # most recently used last
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        slot = max(now + (1.0 - bucket.tokens) / rate, bucket.promised + 1.0 / rate)
        bucket.promised = slot
        return slot - now

    def give_back(self, domain: str) -> None:
        """Return the token `take` gave a message to `domain` that did not go after all.

        A message is checked against its domain's rate when it is composed; one then stopped
        (an unsubscribe, a 421 to its domain) leaves the domain its place, as if never taken.
        """
        bucket, rate = self._buckets.get(domain), self.rate_for(domain)
        if bucket is not None and rate > 0:
            bucket.tokens = min(self._burst(rate), bucket.tokens + 1.0)

    def _burst(self, rate: float) -> float:
        """The tokens a bucket holds at most: `burst_seconds` of the rate, at least one email."""
        return max(1.0, rate * self.burst_seconds)

    def __len__(self) -> int:
        """Domains with a bucket now."""
        return len(self._buckets)
