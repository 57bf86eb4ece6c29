"""Taking each scheduled broadcast's audience when its first moment comes: the tick's first half.

A broadcast goes to those of its audience who signed up before its first moment (its
time in the easternmost zone, UTC+14, for a local time). From then on each tick takes
the next batches of recipients, by enrollment id, in short writes of their own, until
the whole audience is taken; each recipient's enrollment is woken by the time the
broadcast is due to them, and the interpreter decides the rest (engine/flow/broadcasts.py).
A tick spends at most `budget` seconds on it, so that deciding and sending keep time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from engine.logs import log
from engine.scheduler.funnels import Funnels
from engine.sequences.plan import BroadcastPlan
from engine.store import broadcasts as calendar
from engine.store.db import DbEngine

BATCH = 5_000  # recipients a write: ~50 ms on SQLite at a million subscribers
BUDGET_SECONDS = 0.5  # of one tick


def take_audiences(db_engine: DbEngine, funnels: Funnels, now: datetime,
                   batch: int = BATCH, budget: float = BUDGET_SECONDS) -> int:
    """Take recipients of every broadcast whose time has come, for up to `budget` seconds; how many."""
    scheduled = [b for plan in funnels.plans.values() for b in plan.broadcasts]
    if not scheduled:
        return 0
    with db_engine.connect() as conn:
        due = calendar.to_take(conn, scheduled, now)
    began, taken = time.perf_counter(), 0
    for broadcast in due:
        due_in = _due_in(broadcast)
        while time.perf_counter() - began < budget:
            got = calendar.take_batch(db_engine, broadcast, now, batch, due_in)
            if got is None:
                break
            taken += got
            if got < batch:  # the last batch: taken whole
                log("broadcast_taken", broadcast=broadcast.id, funnel=broadcast.funnel)
                break
    return taken


def _due_in(broadcast: BroadcastPlan) -> Callable[[str], datetime]:
    """When the broadcast is due to a recipient in a time zone, worked out once per zone."""
    return lru_cache(maxsize=None)(broadcast.due_at)
