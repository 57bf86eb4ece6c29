"""What a daemon does when a release goes live: record it, and wake the emails held for their files."""

from __future__ import annotations

from typing import Any

from engine.logs import log
from engine.project.release import Release
from engine.scheduler.clock import Clock
from engine.scheduler.funnels import OnRelease
from engine.scheduler.sending import RENDER_HELD_RETRY
from engine.store.db import DbEngine
from engine.store.releases import record_release, wake_held


def release_recorder(db_engine: DbEngine, clock: Clock) -> OnRelease:
    """The LiveFunnels hook: the release row (once, whichever daemon is first) and held mail due now."""

    def went_live(release: Release, changed: dict[str, Any]) -> None:
        now = clock.now()
        with db_engine.begin() as conn:
            record_release(conn, release.id, release.hash, now, changed)
            # The new files may render what the old ones could not: try it at the next tick.
            woken = wake_held(conn, now, RENDER_HELD_RETRY)
        if woken:
            log("render_held_retried", release=release.id, deliveries=woken)

    return went_live
