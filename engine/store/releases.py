"""Releases: which files a daemon served from when, and the held emails a new release may mend."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.project.release import Release
from engine.store.inlists import one_of
from engine.store.inserts import insert_ignoring_conflicts
from engine.store.status import DeliveryStatus
from engine.store.tables import DELIVERY, RELEASE

# The reply a delivery held for its template files starts with (engine/scheduler/sending.py).
HELD_PREFIX = "held: "


def record_release(conn: Connection, release_id: str, digest: str, at: datetime,
                   summary: dict[str, Any]) -> None:
    """Store a release that went live; one that was live before (an edit undone) goes live again."""
    row = {"id": release_id, "hash": digest, "went_live_at": at, "summary": summary}
    if insert_ignoring_conflicts(conn, RELEASE, [row], ["hash"]) == 0:
        conn.execute(sa.update(RELEASE).where(RELEASE.c.hash == digest)
                     .values(went_live_at=at, summary=summary))


def held_steps(conn: Connection, enrollment_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The steps of these enrollments whose emails are held for their files, oldest first."""
    wanted = sorted(set(enrollment_ids))
    if not wanted:
        return {}
    statement = (
        sa.select(DELIVERY.c.enrollment_id, DELIVERY.c.step)
        # The (enrollment, step) unique index finds an enrollment's few deliveries.
        .where(one_of(conn, DELIVERY.c.enrollment_id, wanted), DELIVERY.c.status == DeliveryStatus.DEFERRED,
               DELIVERY.c.last_reply.startswith(HELD_PREFIX, autoescape=True))
        .order_by(DELIVERY.c.created_at, DELIVERY.c.id)
    )
    found: dict[int, tuple[str, ...]] = {}
    for enrollment, step in conn.execute(statement):
        found[enrollment] = (*found.get(enrollment, ()), step)
    return found


def has_releases(conn: Connection) -> bool:
    """Whether the database has the release table (one not migrated since releases came has not)."""
    return sa.inspect(conn).has_table("release")


def latest_release(conn: Connection) -> RowMapping | None:
    """The release that went live last, or None before the first."""
    newest = recent_releases(conn, 1)
    return newest[0] if newest else None


def recent_releases(conn: Connection, limit: int) -> list[RowMapping]:
    """The newest `limit` releases, newest first."""
    statement = sa.select(RELEASE).order_by(RELEASE.c.went_live_at.desc(), RELEASE.c.id).limit(limit)
    return list(conn.execute(statement).mappings())


def files_of(row: RowMapping) -> Release | None:
    """The release a row describes, to compare with; None for a row written before rows kept their files."""
    return Release.from_record(row["hash"], row["summary"].get("files", {}))


def releases_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    """These releases by id (those that exist)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(RELEASE).where(RELEASE.c.id.in_(wanted))).mappings()
    return {row["id"]: row for row in rows}


def queued_by_step(conn: Connection, funnel: str, steps: Iterable[str]) -> dict[str, int]:
    """How many emails of these steps of `funnel` wait to be composed (queued, or deferred to retry)."""
    wanted = sorted(set(steps))
    if not wanted:
        return {}
    statement = (
        sa.select(DELIVERY.c.step, sa.func.count())
        .where(DELIVERY.c.funnel == funnel, DELIVERY.c.step.in_(wanted),
               DELIVERY.c.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED]))
        .group_by(DELIVERY.c.step)
    )
    return {step: count for step, count in conn.execute(statement)}


def wake_held(conn: Connection, now: datetime, within: timedelta) -> int:
    """Make deliveries held for their template files due now (held at most `within` ahead)."""
    statement = (
        sa.update(DELIVERY)
        .where(
            # The range uses the next_attempt_at index: held mail is due within `within`.
            DELIVERY.c.next_attempt_at > now,
            DELIVERY.c.next_attempt_at <= now + within,
            DELIVERY.c.status == DeliveryStatus.DEFERRED,
            DELIVERY.c.last_reply.startswith(HELD_PREFIX, autoescape=True),
        )
        .values(next_attempt_at=now)
    )
    return conn.execute(statement).rowcount or 0

