"""What a daemon does when a release goes live: record it with its impact, and wake held emails.

The record compares the new release with the one the database says went live last, not
with this daemon's memory: a daemon restarted on edited files, and the second of several
daemons picking up the same edit, see the same "before". The impact report (what `funnel
validate --against-db` prints) is counted before any tick acts on the new files, so it
says what the edit is about to do; it is logged once, by the daemon that records the release.
"""

from __future__ import annotations

from typing import Any

from engine.logs import log
from engine.project.release import changes
from engine.scheduler.clock import Clock
from engine.scheduler.funnels import Funnels, OnRelease
from engine.scheduler.sending import RENDER_HELD_RETRY
from engine.store.db import DbEngine
from engine.store.releases import files_of, latest_release, record_release, wake_held
from engine.subscribers.impact import impact_at


def release_recorder(db_engine: DbEngine, clock: Clock, shown_database: str) -> OnRelease:
    """The LiveFunnels hook: the release row with what changed and whom it touches, and held mail due now.

    `shown_database`: the database's URL as the impact report prints it (no password).
    """

    def went_live(funnels: Funnels) -> None:
        release, now = funnels.release, clock.now()
        # The report reads every enrollment (seconds on a big list): it reads in a read
        # transaction, which on SQLite holds back no writer, and only the record below takes
        # the write lock. A daemon that finds the release recorded meanwhile writes nothing.
        with db_engine.connect() as conn:
            last = latest_release(conn)
            if last is not None and last["hash"] == release.hash:
                return  # a restart on the same files, or another daemon recorded it first
            summary: dict[str, Any] = {"previous": None, "files": release.as_record(), "impact": None}
            if last is None:  # the first release: nothing before it to compare, nobody's path changes
                summary.update(changes(None, release))
            else:
                before = files_of(last)
                summary.update(changes(before, release), previous=last["id"])
                impact = impact_at(conn, shown_database, funnels.plans, complete=True,
                                   changed_emails=summary["emails_changed"])
                summary["impact"] = impact.as_json()
        with db_engine.begin() as conn:
            now_last = latest_release(conn)
            if now_last is not None and now_last["hash"] == release.hash:
                return  # another daemon recorded it while this one counted
            record_release(conn, release.id, release.hash, now, summary)
            # The new files may render what the old ones could not: try it at the next tick.
            woken = wake_held(conn, now, RENDER_HELD_RETRY)
        if last is not None:
            log("release_impact", release=release.id, previous=last["id"], report=impact.lines())
        if woken:
            log("render_held_retried", release=release.id, deliveries=woken)

    return went_live
