"""Paused steps and their history: the guardrails' brake, as named queries.

A pause is one row per (funnel, step), so two daemons judging the same numbers at the
same moment pause it once (the primary key) and alert once (the rowcount says who won).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.flow.state import Stage
from engine.store.broadcasts import wake_waiting
from engine.store.inserts import insert_ignoring_conflicts
from engine.store.tables import ENROLLMENT, GUARDRAIL_EVENT, STEP_PAUSE

# Stages whose enrollments wait at a step of a path: a resume wakes those at that step.
_WALKING = (Stage.NURTURE.value, Stage.SALES.value, Stage.CUSTOMER.value, Stage.WINBACK.value)


@dataclass(frozen=True)
class Breach:
    """Why a step is paused: which number crossed which threshold."""

    metric: str  # unsubscribes|bounces|complaints|manual
    detail: str
    sends: int | None = None
    count: int | None = None
    threshold: float | None = None


def paused_steps(conn: Connection) -> dict[str, frozenset[str]]:
    """Funnel -> the step ids paused in it now."""
    rows = conn.execute(
        sa.select(STEP_PAUSE.c.funnel, STEP_PAUSE.c.step).where(STEP_PAUSE.c.resumed_at.is_(None))
    )
    found: dict[str, set[str]] = {}
    for funnel, step in rows:
        found.setdefault(funnel, set()).add(step)
    return {funnel: frozenset(steps) for funnel, steps in found.items()}


def pauses(conn: Connection, funnel: str | None = None) -> list[RowMapping]:
    """Every step ever paused (one row each, paused now or resumed), newest first."""
    statement = sa.select(STEP_PAUSE).order_by(STEP_PAUSE.c.paused_at.desc())
    if funnel is not None:
        statement = statement.where(STEP_PAUSE.c.funnel == funnel)
    return list(conn.execute(statement).mappings())


def pause(conn: Connection, funnel: str, step: str, why: Breach, now: datetime) -> bool:
    """Pause a step; True only for the caller that paused it (it was running until now)."""
    row = {
        "funnel": funnel,
        "step": step,
        "paused_at": now,
        "metric": why.metric,
        "detail": why.detail[:500],
        "resumed_at": None,
        "resumed_by": None,
    }
    paused = insert_ignoring_conflicts(conn, STEP_PAUSE, [row], ["funnel", "step"]) == 1
    if not paused:
        result = conn.execute(
            sa.update(STEP_PAUSE)
            .where(
                STEP_PAUSE.c.funnel == funnel, STEP_PAUSE.c.step == step, STEP_PAUSE.c.resumed_at.is_not(None)
            )
            .values(
                paused_at=now, metric=why.metric, detail=why.detail[:500], resumed_at=None, resumed_by=None
            )
        )
        paused = result.rowcount == 1
    if paused:
        _history(conn, funnel, step, "paused", now, why=why)
    return paused


def resume(conn: Connection, funnel: str, step: str, by: str, now: datetime) -> int | None:
    """Resume a paused step and wake who waits at it: how many, or None if it was not paused."""
    result = conn.execute(
        sa.update(STEP_PAUSE)
        .where(STEP_PAUSE.c.funnel == funnel, STEP_PAUSE.c.step == step, STEP_PAUSE.c.resumed_at.is_(None))
        .values(resumed_at=now, resumed_by=by[:100])
    )
    if result.rowcount != 1:
        return None
    _history(conn, funnel, step, "resumed", now, by=by)
    woken = conn.execute(
        sa.update(ENROLLMENT)
        .where(ENROLLMENT.c.funnel == funnel, ENROLLMENT.c.step == step, ENROLLMENT.c.stage.in_(_WALKING))
        .values(next_run_at=now, updated_at=now)
    )
    # A broadcast's recipients wait for it wherever they are in their paths.
    return int(woken.rowcount) + wake_waiting(conn, step, now)


def waiting_at(conn: Connection, funnel: str, step: str) -> int:
    """How many enrollments stand at a step of a path (those a pause holds)."""
    statement = sa.select(sa.func.count()).where(
        ENROLLMENT.c.funnel == funnel, ENROLLMENT.c.step == step, ENROLLMENT.c.stage.in_(_WALKING)
    )
    return int(conn.execute(statement).scalar_one())


def guardrail_events(conn: Connection, funnel: str | None = None, limit: int = 200) -> list[RowMapping]:
    """Pauses and resumes, newest first."""
    statement = sa.select(GUARDRAIL_EVENT).order_by(GUARDRAIL_EVENT.c.at.desc(), GUARDRAIL_EVENT.c.id.desc())
    if funnel is not None:
        statement = statement.where(GUARDRAIL_EVENT.c.funnel == funnel)
    return list(conn.execute(statement.limit(limit)).mappings())


def _history(
    conn: Connection,
    funnel: str,
    step: str,
    action: str,
    now: datetime,
    why: Breach | None = None,
    by: str | None = None,
) -> None:
    conn.execute(
        sa.insert(GUARDRAIL_EVENT).values(
            funnel=funnel,
            step=step,
            action=action,
            metric=why.metric if why else None,
            detail=(why.detail if why else "")[:500],
            sends=why.sends if why else None,
            count=why.count if why else None,
            threshold=why.threshold if why else None,
            by=by,
            at=now,
        )
    )
