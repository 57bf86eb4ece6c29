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
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from engine.flow.experiment import decide
from engine.flow.variants import arms, rule_of, sample_place, sampled
from engine.logs import log
from engine.scheduler.funnels import Funnels
from engine.sequences.plan import BroadcastPlan
from engine.store import broadcasts as calendar
from engine.store import trials
from engine.store.db import DbEngine

BATCH = 5_000  # recipients a write: ~50 ms on SQLite at a million subscribers
BUDGET_SECONDS = 0.5  # of one tick


def take_audiences(db_engine: DbEngine, funnels: Funnels, now: datetime, batch: int = BATCH,
                   budget: float = BUDGET_SECONDS, told: set[tuple[str, str]] | None = None) -> int:
    """Take recipients of every broadcast whose time has come, for up to `budget` seconds; how many.

    `told`: the (release, broadcast) pairs already logged as held, kept by the caller (the
    daemon's ticker) so that each is said once a release, not once a tick.
    """
    scheduled = [b for plan in funnels.plans.values() for b in plan.broadcasts]
    if not scheduled:
        return 0
    with db_engine.connect() as conn:
        found = calendar.rows(conn)
    due = calendar.to_take(found, scheduled, now)
    _tell_held(funnels, scheduled, found, set() if told is None else told)
    began, taken = time.perf_counter(), 0
    for broadcast in due:
        due_for = _due_for(broadcast)
        while time.perf_counter() - began < budget:
            got = calendar.take_batch(db_engine, broadcast, now, batch, due_for)
            if got is None:
                break
            taken += got
            if got < batch:  # the last batch: taken whole
                log("broadcast_taken", broadcast=broadcast.id, funnel=broadcast.funnel)
                break
    return taken


def _tell_held(funnels: Funnels, scheduled: list[BroadcastPlan], found: Mapping[str, Mapping[str, Any]],
               told: set[tuple[str, str]]) -> None:
    """Log each broadcast held because its file moved it to another funnel, unless `told` has it."""
    for broadcast in scheduled:
        held = calendar.moved(broadcast, found.get(broadcast.id))
        if held is not None and (funnels.release.id, broadcast.id) not in told:
            told.add((funnels.release.id, broadcast.id))
            log("broadcast_held", broadcast=broadcast.id, funnel=broadcast.funnel, problem=held)


def _due_for(broadcast: BroadcastPlan) -> Callable[[int, str], datetime]:
    """When the broadcast is due to a recipient: at their time (worked out once per zone), or, for
    the rest of an experiment's audience, `decide_after` later, when its winner is known."""
    due_in = lru_cache(maxsize=None)(broadcast.due_at)
    experiment = sampled(broadcast)
    if experiment is None:
        return lambda _subscriber, timezone: due_in(timezone)

    def due_for(subscriber: int, timezone: str) -> datetime:
        tried = sample_place(broadcast, str(subscriber))
        return due_in(timezone) if tried is not None else due_in(timezone) + experiment.decide_after

    return due_for


def choose_winners(db_engine: DbEngine, funnels: Funnels, now: datetime) -> int:
    """Choose, once, the winner of each broadcast experiment whose time has come: `decide_after`
    after its first recipients were due. How many were chosen now.

    Not for a broadcast whose file names the winner, nor one held because its file names
    another funnel (its sample's counts are in the funnel it was scheduled for).
    """
    chosen = 0
    experiments = [(plan, b, e) for plan in funnels.plans.values() for b in plan.broadcasts
                   if (e := sampled(b)) is not None]
    if not experiments:
        return 0
    with db_engine.connect() as conn:
        found = calendar.rows(conn)  # one read a tick for every experiment
    for plan, broadcast, experiment in experiments:
        row = found.get(broadcast.id)
        if row is None or row["winner"] is not None or row["state"] == calendar.CANCELLED:
            continue
        first = row["first_due_at"]  # when its first recipients were due
        if first is None or now < first + experiment.decide_after or calendar.moved(broadcast, row):
            continue
        with db_engine.connect() as conn:
            counts = trials.counts_for(conn, plan.funnel, [(broadcast.id, experiment.metric,
                                                            experiment.attribution)])
        tried = arms(broadcast.email, counts.get(broadcast.id, ()))
        decision = decide(tried, rule_of(experiment), final=True)
        winner = decision.winner or tried[0].variant
        with db_engine.begin() as conn:
            if calendar.keep_winner(conn, broadcast.id, winner, decision.reason, now):
                chosen += 1
                calendar.wake_waiting(conn, broadcast.id, now)  # the rest due by now go at once
                log("experiment_decided", broadcast=broadcast.id, funnel=plan.funnel, winner=winner,
                    reason=decision.reason)
    return chosen
