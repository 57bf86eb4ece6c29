"""A broadcast's numbers as JSON-ready dicts: its state, its audience before it goes, and what it did.

`funnel broadcast list|audience|stats`, the `broadcasts` section of `funnel stats`,
`/api/broadcasts`, `/api/stats` and the dashboard's broadcast pages all read these, so
each number is the same wherever it is shown (docs/broadcasts.md, "Numbers").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.errors import EngineError, did_you_mean
from engine.flow.broadcasts import ratio_conflict
from engine.flow.state import Facts
from engine.flow.step import ahead
from engine.sequences.plan import BroadcastPlan, Plan, Role
from engine.sequences.values import format_delay
from engine.stats.report import funnel_report
from engine.store import audience as audience_sql
from engine.store import broadcasts as calendar
from engine.store.broadcast_stats import attributed
from engine.store.db import DbConnection, DbEngine, snapshot
from engine.store.rows import state_of
from engine.store.stepstats import StepCounts, step_counts

DRAFT, SENT = "draft", "sent"  # no row yet; sending with nothing left to send
HELD = "held"  # its file moved it to another funnel than the one it was scheduled for
# The ratio is estimated over every enrollment of an audience up to this size, else over
# every k-th one (about this many): ~0.4 s of Python on SQLite, whatever the list's size.
SAMPLE = 20_000
TOP_ZONES = 5


class UnknownBroadcastError(EngineError):
    """No broadcast file of the project has that id."""

    def __init__(self, broadcast_id: str, known: Iterable[str]) -> None:
        ids = sorted(known)
        choices = f"the broadcasts: {', '.join(ids)}" if ids else "the project has no broadcast files"
        hint = did_you_mean(broadcast_id, ids, choices)
        super().__init__(f"no broadcast '{broadcast_id}' in broadcasts/; {hint}")


def find(plans: Mapping[str, Plan], broadcast_id: str) -> tuple[Plan, BroadcastPlan]:
    """The broadcast with this id and its funnel's plan; UnknownBroadcastError naming the known ones."""
    for plan in plans.values():
        found = plan.broadcast(broadcast_id)
        if found is not None:
            return plan, found
    raise UnknownBroadcastError(broadcast_id, (b.id for p in plans.values() for b in p.broadcasts))


def state(row: Mapping[str, Any] | None, progress: calendar.Progress | None, pending_mail: int) -> str:
    """draft, scheduled, taking, sending, sent (taken whole, nobody and no email pending) or cancelled
    (`held` is said by `_summary`, which knows the file)."""
    if row is None:
        return DRAFT
    if row["state"] == calendar.SENDING and progress is not None and not progress.by_status.get(
        calendar.PENDING
    ) and not pending_mail:
        return SENT
    return str(row["state"])


def listing(conn: DbConnection, plans: Mapping[str, Plan]) -> list[dict[str, Any]]:
    """Every broadcast of the project's files in file order, then those on the calendar whose file is gone."""
    rows = calendar.rows(conn)
    listed: list[tuple[str, str, BroadcastPlan | None, Mapping[str, Any] | None]] = [
        (b.id, calendar.mail_funnel(b, rows.get(b.id)), b, rows.pop(b.id, None))
        for plan in plans.values() for b in plan.broadcasts
    ]
    listed += [(broadcast_id, row["funnel"], None, row) for broadcast_id, row in sorted(rows.items())]
    ids: dict[str, list[str]] = {}
    for broadcast_id, funnel, _, _ in listed:
        ids.setdefault(funnel, []).append(broadcast_id)
    counts = {funnel: _counts(conn, funnel, each) for funnel, each in ids.items()}
    return [_summary(conn, broadcast, row, counts[funnel].get(broadcast_id), broadcast_id)
            for broadcast_id, funnel, broadcast, row in listed]


def _counts(conn: DbConnection, funnel: str, ids: list[str]) -> dict[str, StepCounts]:
    if not ids:
        return {}
    return {c.step: c for c in step_counts(conn, funnel, steps=ids)}


def _summary(
    conn: DbConnection,
    broadcast: BroadcastPlan | None,
    row: Mapping[str, Any] | None,
    counts: StepCounts | None,
    broadcast_id: str | None = None,
    progress: calendar.Progress | None = None,
) -> dict[str, Any]:
    if progress is None and row is not None:
        progress = calendar.progress(conn, row["id"])
    pending = counts.pending if counts else 0
    held = calendar.moved(broadcast, row) if broadcast is not None else None
    return {
        "broadcast": broadcast.id if broadcast else broadcast_id,
        "name": broadcast.name if broadcast else broadcast_id,
        # the funnel its emails are in: for a held one, the funnel it was scheduled for
        "funnel": calendar.mail_funnel(broadcast, row) if broadcast else row["funnel"] if row else None,
        "file": broadcast.source if broadcast else None,  # None: its file was removed
        "role": broadcast.email.role.value if broadcast else None,
        "when": broadcast.when if broadcast else None,
        "state": HELD if held else state(row, progress, pending),
        "held": held,  # why it sends nothing, and what to do; None when it is not held
        "recipients": row["recipients"] if row else 0,
        "sent": counts.sent if counts else 0,
        "scheduled_at": _iso(row["scheduled_at"]) if row else None,
        "scheduled_by": row["scheduled_by"] if row else None,
        "cancelled_at": _iso(row["cancelled_at"]) if row else None,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def audience(
    conn: DbConnection, plan: Plan, broadcast: BroadcastPlan, now: datetime, sample: int = SAMPLE
) -> dict[str, Any]:
    """Who the broadcast would go to if its audience were taken now, who is left out and why.

    One counting statement (engine/store/audience.py), then, for a sale, the ratio rule asked
    of each enrollment (or of a sample of about `sample`) as it stands now: an estimate,
    since people move on before their time comes.
    """
    counts = audience_sql.count(conn, broadcast.audience, broadcast.funnel, now, broadcast.first_due())
    taken = counts.taken
    left_out = sum(counts.left_out.values())
    asked = taken - left_out  # those the ratio decides for
    ratio: Counter[str] = Counter()
    every = math.ceil(taken / sample) if taken else 1
    sampled = 0
    if broadcast.email.role is Role.SALE and asked > 0:
        ratio, sampled = _ratio_skips(conn, plan, broadcast, now, every)
        if sampled and every > 1:  # scaled up to the whole audience
            ratio = Counter({reason: round(n * asked / sampled) for reason, n in ratio.items()})
    skipped = sum(ratio.values())
    dues = sorted(broadcast.due_at(zone) for zone in counts.by_timezone)
    zones = sorted(counts.by_timezone.items(), key=_most_first)
    row = calendar.row(conn, broadcast.id)
    return {
        "broadcast": broadcast.id,
        "funnel": broadcast.funnel,
        "role": broadcast.email.role.value,
        "when": broadcast.when,
        "state": row["state"] if row is not None else DRAFT,
        "matching": counts.matching,
        "gone": dict(sorted(counts.gone.items())),
        "taken": taken,
        "left_out": {stage: counts.left_out[stage] for stage in audience_sql.LEFT_OUT_STAGES
                     if counts.left_out.get(stage)},
        "ratio_skipped": dict(ratio.most_common()),
        # None: every enrollment was asked (or the broadcast teaches: the ratio never skips it)
        "sample": sampled if sampled and every > 1 else None,
        "recipients": max(asked - skipped, 0),
        "first_due": _iso(dues[0]) if dues else None,
        "last_due": _iso(dues[-1]) if dues else None,
        "timezones": [{"timezone": zone, "count": n} for zone, n in zones[:TOP_ZONES]],
        "other_timezones": sum(n for _, n in zones[TOP_ZONES:]),
    }


def _ratio_skips(
    conn: DbConnection, plan: Plan, broadcast: BroadcastPlan, now: datetime, every: int
) -> tuple[Counter[str], int]:
    """Why the ratio would skip each sampled enrollment (bar those left out by stage); how many were asked."""
    reasons: Counter[str] = Counter()
    asked = 0
    for row in audience_sql.sample_states(conn, broadcast.audience, broadcast.funnel, now, every):
        if row["stage"] in audience_sql.LEFT_OUT_STAGES:
            continue
        asked += 1
        enrolled = state_of(row)
        conflict = ratio_conflict(plan, enrolled, broadcast, ahead(plan, enrolled, Facts()))
        if conflict is not None:
            reasons[conflict] += 1
    return reasons, asked


def numbers(conn: DbConnection, broadcast: BroadcastPlan) -> dict[str, Any]:
    """What the broadcast did: its email's numbers, its recipients by status, skips by reason, and
    the purchases attributed to it (within `attribution` of each recipient's email)."""
    row = calendar.row(conn, broadcast.id)
    funnel = calendar.mail_funnel(broadcast, row)
    counts = _counts(conn, funnel, [broadcast.id]).get(broadcast.id) or StepCounts(funnel, broadcast.id)
    progress = calendar.progress(conn, broadcast.id)
    bought = attributed(conn, funnel, broadcast.id, broadcast.attribution)
    email = counts.as_dict()
    del email["funnel"], email["step"]
    return {
        **_summary(conn, broadcast, row, counts, progress=progress),
        "subject": broadcast.email.subject,
        "email": email,
        "recipients_by_status": dict(sorted(progress.by_status.items())),
        "skipped_because": dict(sorted(progress.skipped_because.items(), key=_most_first)),
        "next_due": _iso(progress.next_due),
        "attribution": format_delay(broadcast.attribution),
        "purchases": bought.purchases,
        "buyers": bought.buyers,
        "revenue": bought.revenue,
    }


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def read_report(
    db_engine: DbEngine,
    plans: Mapping[str, Plan],
    funnel: str | None = None,
    since: datetime | None = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """`funnel stats`' report with each funnel's broadcasts, read from one snapshot (UnknownFunnelError
    as engine/stats/report.py raises it). A broadcast's numbers are all of its own, whatever `since`."""
    with snapshot(db_engine) as conn:
        return with_broadcasts(conn, funnel_report(conn, plans, funnel, since, now=now), plans)


def with_broadcasts(conn: DbConnection, report: dict[str, Any], plans: Mapping[str, Plan]) -> dict[str, Any]:
    """The stats report (engine/stats/report.py) with each funnel's `broadcasts`: `numbers` of each."""
    for funnel in report["funnels"]:
        plan = plans.get(funnel["funnel"])
        funnel["broadcasts"] = [numbers(conn, b) for b in (plan.broadcasts if plan else ())]
    return report
