"""GET /metrics: this process's counters and the queue read from the database, as Prometheus text.

A small registry written here rather than a client library (DESIGN.md fixes the
dependencies): counters with one label, one histogram, and gauges read from the database
when scraped. The format is Prometheus' text exposition format 0.0.4.

The counters belong to this process and start at 0 when it starts (Prometheus' `rate()`
and `increase()` handle the reset); the gauges read from the database are the same from
every daemon sharing it. docs/operations.md lists every metric.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from engine.mail.transport import TransportState
from engine.store.counts import QueueCounts, queue_counts_within
from engine.store.db import DbEngine, DbError
from engine.store.status import PENDING, DeliveryStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# What became of a claimed delivery (docs/operations.md, "Metrics"): its final status, a
# 4xx `deferred` (an attempt), `throttled` (held by a domain rate or the warm-up) or
# `waiting` (held for the send window, a 421 from its domain, a missing funnel file).
SEND_OUTCOMES = (
    DeliveryStatus.SENT, DeliveryStatus.BOUNCED, DeliveryStatus.REJECTED, DeliveryStatus.UNKNOWN,
    DeliveryStatus.DEFERRED, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED, "throttled", "waiting",
)
SIGNUP_RESULTS = ("new", "known", "suppressed", "invalid", "limited", "trapped", "unavailable")
PENDING_STATUSES = PENDING
# A tick usually takes milliseconds; a large batch over a slow SMTP server, seconds.
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OVERDUE_AFTER = timedelta(minutes=5)
# Scrapes within this many seconds share one database read: several Prometheus servers,
# or one scraping every second, cost the database one read per 5 seconds at most.
CACHE_SECONDS = 5.0
# PostgreSQL gives up on the read after this long (a scrape times out after 10 s by default).
QUERY_TIMEOUT_MS = 2000


def escape_label(value: str) -> str:
    """A label value as the text format writes it between double quotes."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}", *samples]


def _sample(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    inner = ",".join(f'{key}="{escape_label(v)}"' for key, v in labels.items())
    return f"{name}{{{inner}}} {_number(value)}"


class Counter:
    """A counter with one label; the known values are shown from the start, at 0."""

    def __init__(self, name: str, help_text: str, label: str, known: Sequence[str] = ()) -> None:
        self.name = name
        self.help_text = help_text
        self.label = label
        self._values: dict[str, float] = dict.fromkeys(known, 0.0)
        self._lock = threading.Lock()

    def inc(self, value: str, amount: float = 1.0) -> None:
        """Add `amount` to the series whose label is `value`."""
        with self._lock:
            self._values[value] = self._values.get(value, 0.0) + amount

    def get(self, value: str) -> float:
        """The series' current count."""
        with self._lock:
            return self._values.get(value, 0.0)

    def lines(self) -> list[str]:
        """The family in the text format."""
        with self._lock:
            values = dict(self._values)
        samples = (_sample(self.name, count, {self.label: value}) for value, count in values.items())
        return _family(self.name, "counter", self.help_text, samples)


class Histogram:
    """A histogram without labels: cumulative buckets, sum and count."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help_text = help_text
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count one observation."""
        with self._lock:
            for i, bound in enumerate(self.bounds):
                if value <= bound:
                    self._counts[i] += 1
            self._sum += value
            self._count += 1

    def lines(self) -> list[str]:
        """The family in the text format."""
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        samples = [
            _sample(f"{self.name}_bucket", n, {"le": _number(bound)})
            for bound, n in zip(self.bounds, counts, strict=True)
        ]
        samples += [
            _sample(f"{self.name}_bucket", count, {"le": "+Inf"}),
            _sample(f"{self.name}_sum", total),
            _sample(f"{self.name}_count", count),
        ]
        return _family(self.name, "histogram", self.help_text, samples)


class Metrics:
    """The daemon's metrics: counters the scheduler and the web side add to, gauges read when scraped."""

    def __init__(
        self,
        db_engine: DbEngine,
        now: Callable[[], datetime],
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        transport: Callable[[], TransportState] | None = None,
    ) -> None:
        self.db_engine = db_engine
        self.transport = transport  # the transport's state, read at each scrape (not cached)
        self.now = now  # the daemon's clock: "due" is what the scheduler would call due
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic  # tests hand in their own
        self.sends = Counter(
            "funnel_sends_total", "Claimed deliveries by what became of them in this process",
            "outcome", SEND_OUTCOMES,
        )
        self.signups = Counter(
            "funnel_signups_total", "POST /subscribe answers of this process by result", "result",
            SIGNUP_RESULTS,
        )
        self.tick_seconds = Histogram(
            "funnel_tick_duration_seconds", "How long a scheduler tick took (decide and send)", TICK_BUCKETS
        )
        self.last_tick: float | None = None  # Unix time of the last finished tick
        self._read_lock = threading.Lock()
        self._read_at: float | None = None
        self._counts: QueueCounts | None = None

    def tick_finished(self, seconds: float) -> None:
        """Record a finished tick that took `seconds`."""
        self.tick_seconds.observe(seconds)
        self.last_tick = time.time()

    def render(self) -> str:
        """Every metric in the text format; reads the database (at most once per `cache_seconds`)."""
        counts = self._queue()
        lines = _family("funnel_up", "gauge", "1 while the daemon answers", [_sample("funnel_up", 1)])
        lines += _family(
            "funnel_database_up", "gauge", "1 if the last read of the database for these gauges worked",
            [_sample("funnel_database_up", 0 if counts is None else 1)],
        )
        if self.last_tick is not None:
            lines += _family(
                "funnel_last_tick_timestamp_seconds", "gauge", "Unix time the last scheduler tick finished",
                [_sample("funnel_last_tick_timestamp_seconds", self.last_tick)],
            )
        if self.transport is not None:
            lines += _transport(self.transport())
        lines += self.sends.lines() + self.signups.lines() + self.tick_seconds.lines()
        if counts is not None:
            lines += _gauge("funnel_enrollments_due", "Enrollments whose next_run_at has come",
                            counts.enrollments_due)
            lines += _gauge("funnel_enrollments_overdue", "Enrollments due for more than 5 minutes",
                            counts.enrollments_overdue)
            pending: dict[str, int] = {s: counts.deliveries_pending.get(s, 0) for s in PENDING_STATUSES}
            pending.update(counts.deliveries_pending)
            lines += _family(
                "funnel_deliveries_pending", "gauge", "Deliveries not final yet, by status",
                (_sample("funnel_deliveries_pending", n, {"status": s}) for s, n in pending.items()),
            )
            lines += _gauge("funnel_paused_steps", "Steps paused now (by a guardrail or by hand)",
                            counts.paused_steps)
        return "\n".join(lines) + "\n"

    def _queue(self) -> QueueCounts | None:
        """The queue's counts, at most `cache_seconds` old; None when the database cannot be read."""
        with self._read_lock:  # concurrent scrapes wait for one read instead of making their own
            if self._read_at is not None and self.monotonic() - self._read_at < self.cache_seconds:
                return self._counts
            try:
                now = self.now()
                self._counts = queue_counts_within(self.db_engine, now, now - OVERDUE_AFTER, QUERY_TIMEOUT_MS)
            except DbError:  # down, locked or slow: the page still answers
                self._counts = None
            self._read_at = self.monotonic()
            return self._counts


def _transport(state: TransportState) -> list[str]:
    """The transport's two gauges: up, and for how long it has been degraded (0 while up)."""
    down = max(0.0, time.time() - state.since.timestamp()) if not state.ok and state.since else 0.0
    return _gauge("funnel_transport_up", "1 while the transport can deliver, 0 while it is degraded "
                  "(cannot connect to the SMTP server)", 1 if state.ok else 0) + _gauge(
        "funnel_transport_degraded_seconds", "Seconds since the transport became degraded; 0 while it is up",
        round(down, 3))


def _gauge(name: str, help_text: str, value: float) -> list[str]:
    return _family(name, "gauge", help_text, [_sample(name, value)])
