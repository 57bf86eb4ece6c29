"""Per-key rate limits for the public endpoints, in memory and bounded.

A token bucket per key (an IP address, an email address): `limit` requests per
`period`, refilled continuously. The table keeps at most `max_keys` keys, dropping the
least recently seen, so a flood of new addresses cannot grow memory without bound.
Limits are per daemon process: with several daemons behind a load balancer, each
allows the limit (docs/web.md).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache


class RateLimit:
    """`limit` requests per `period` seconds for each key."""

    def __init__(
        self,
        limit: int,
        period: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.rate = limit / period
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Take one request for `key`: 0 when allowed, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.limit), now))
            tokens = min(float(self.limit), tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    def waiting(self, key: str) -> float:
        """The seconds until `key` may take a request (0: now), taking none: for limits that only
        count failures, checked before and hit after."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - at) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


@lru_cache(maxsize=4096)  # parsing an address costs ~5 µs a request; most posts come from a few
def ip_key(ip: str) -> str:
    """What one client is for the per-IP limit: an IPv4 address, or an IPv6 /64 (one site's LAN)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


# Gmail ignores dots in the part before '@', and googlemail.com is the same mailbox.
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def address_key(address: str) -> str:
    """What one mailbox is for the per-address limit: the lowercased address without a +tag,
    and for Gmail without dots and under gmail.com.

    `ann+1@x` and `ann+2@x` reach one inbox, as do `a.nn@gmail.com` and
    `ann@googlemail.com`: a bomber must not get a fresh allowance for each spelling
    (issue 13: 59 dot variants put 20 confirmations in one inbox). Only the limit's key:
    each spelling is still stored as the address it is.
    """
    local, _, domain = address.lower().rpartition("@")
    local = local.partition("+")[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"
