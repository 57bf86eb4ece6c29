"""Unsubscribes that must stop marketing email a tick has already claimed.

An unsubscribe cancels queued email in the database, but a batch the dispatcher has
already claimed is in memory, rendered a round of messages ahead of sending. The
web side of this process adds each unsubscribe here at once; unsubscribes recorded by
other processes sharing the database arrive with every outcome commit
(the `Recorder` in recording.py reads new unsubscribe events then). The sender asks
right before each send. Entries are kept for as long as a claim can live, then dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable


class Stoplist:
    """(subscriber, funnel or None for all) pairs unsubscribed within the last `keep_seconds`."""

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        self._added: OrderedDict[tuple[int, str | None], float] = OrderedDict()
        self._lock = threading.Lock()  # web threads add while the event loop asks

    def add(self, stops: Iterable[tuple[int, str | None]]) -> None:
        """Stop marketing email to these subscribers (in one funnel, or in all)."""
        now = time.monotonic()
        with self._lock:
            for stop in stops:
                self._added.pop(stop, None)
                self._added[stop] = now
            while self._added:
                oldest, at = next(iter(self._added.items()))
                if now - at <= self.keep_seconds:
                    break
                del self._added[oldest]

    def stops(self, subscriber: int, funnel: str) -> bool:
        """Whether marketing email from `funnel` to `subscriber` must not leave."""
        now = time.monotonic()
        with self._lock:
            return any(
                now - self._added.get(stop, -math.inf) <= self.keep_seconds
                for stop in ((subscriber, None), (subscriber, funnel))
            )

    def __len__(self) -> int:
        return len(self._added)
