"""Rate-limit keys and the stop list's memory: unit tests of small pure pieces."""

from __future__ import annotations

from engine.scheduler.stoplist import Stoplist
from engine.web.limits import RateLimit, address_key, ip_key


def test_one_mailbox_and_one_ipv6_network_share_an_allowance() -> None:
    assert address_key("Ann+promo@Example.com") == address_key("ann@example.com") == "ann@example.com"
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert ip_key("203.0.113.7") == "203.0.113.7"
    assert ip_key("unknown") == "unknown"


def test_a_rate_limit_refills_and_forgets_the_oldest_keys() -> None:
    now = [0.0]
    limit = RateLimit(2, 10.0, max_keys=3, clock=lambda: now[0])
    assert [limit.hit("a"), limit.hit("a")] == [0.0, 0.0]
    assert limit.hit("a") == 5.0  # one request back every 5 s
    now[0] = 5.0
    assert limit.hit("a") == 0.0
    for key in "bcd":
        limit.hit(key)
    assert len(limit) == 3  # 'a' was the least recently seen: dropped


def test_a_stop_lasts_as_long_as_a_claim_can_and_no_longer() -> None:
    stops = Stoplist(keep_seconds=0.05)
    stops.add([(1, "minimal"), (2, None)])
    assert stops.stops(1, "minimal") and stops.stops(2, "other") and not stops.stops(1, "other")
    import time

    time.sleep(0.06)
    assert not stops.stops(1, "minimal") and not stops.stops(2, "other")
