"""The counts each experiment's decisions read, for the tick: read at most every few seconds.

Thompson sampling is as sound on counts a few seconds old as on fresh ones (every
allocation is a draw), and a busy evergreen step would otherwise cost a GROUP BY over its
deliveries at every round of deciding. A broadcast's winner, once chosen, is read from its
row (engine/scheduler/broadcasts.py chooses it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from engine.flow.state import Trial
from engine.scheduler.funnels import Funnels
from engine.sequences.plan import ExperimentPlan
from engine.store import broadcasts as calendar
from engine.store import trials
from engine.store.db import DbConnection

FRESH = timedelta(seconds=10)
# By database (its URL: an engine's id may be reused once it is gone), funnel, step and what it
# counts (an edit may change the metric or the attribution window): when read, by the daemon's
# clock (a simulated day in a test reads fresh counts as a real one does), and the counts.
_read: dict[tuple[str, str, str, str, timedelta], tuple[datetime, trials.Counts]] = {}


def experiment_counts(
    conn: DbConnection, funnel_ids: Iterable[str], funnels: Funnels, now: datetime
) -> dict[str, dict[str, Trial]]:
    """Per funnel of `funnel_ids`: each experimental email's Trial (counts, and a broadcast's winner)."""
    found: dict[str, dict[str, Trial]] = {}
    winners: dict[str, str | None] | None = None
    for funnel in funnel_ids:
        plan = funnels.plans.get(funnel)
        if plan is None:
            continue
        for email in plan.emails():
            if not email.variants or email.experiment is None:
                continue
            if plan.broadcast(email.id) is None:
                trial = Trial(_counts(conn, funnel, email.id, email.experiment, now))
            else:
                # A broadcast's recipients need only its winner (engine/flow/variants.py,
                # for_broadcast): its counts are read once, when the winner is chosen.
                if winners is None:
                    winners = {b: r["winner"] for b, r in calendar.rows(conn).items()}
                trial = Trial(winner=winners.get(email.id))
            found.setdefault(funnel, {})[email.id] = trial
    return found


def _counts(
    conn: DbConnection, funnel: str, step: str, experiment: ExperimentPlan, now: datetime
) -> trials.Counts:
    key = (conn.engine.url.render_as_string(hide_password=True), funnel, step, experiment.metric,
           experiment.attribution)
    cached = _read.get(key)
    if cached is not None and timedelta(0) <= now - cached[0] < FRESH:  # a clock set back reads afresh
        return cached[1]
    counts = trials.counts_for(conn, funnel, [(step, experiment.metric, experiment.attribution)])[step]
    _read[key] = (now, counts)
    return counts
