"""What the stats triggers cost an email's writes (and a click's), with and without them.

    python -m bench.tally_cost [--emails 3000] [--rounds 4] [--database sqlite|postgresql]

The engine writes a delivery row when it decides an email, marks it `sending` when a
daemon claims it and `sent` (with its `sent_at`) when the server took it. This does the
same to N rows in three statements, in a new database with every trigger (the tallies of
migration 0005 and the daily counts of 0008), in one with the tallies only
(`daily_sql.uninstall`) and in one without any (`tally_sql.uninstall` too), alternating;
then records a click on each email (`queries.record_event`, one transaction), which sets
the email's `acted` bit and counts its first click of the day. It prints the best of the
rounds per email and per click: the process's CPU on SQLite (the database runs in this
process), the wall time on PostgreSQL (the server's work is in another process). The last
line is JSON (`*_with_us`: every trigger; `*_tallies_us`: without the daily ones).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.postgres import create_database, drop_database
from engine.flow.state import Stage, State
from engine.store import daily_sql, queries, signups, subscribers, tally_sql
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import DELIVERY

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def per_email(url: str, emails: int, triggers: bool, daily: bool = True) -> tuple[float, float]:
    """Seconds per email of the three writes, and per click (CPU on SQLite, wall on PostgreSQL)."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    with db_engine.begin() as conn:
        if not triggers or not daily:
            daily_sql.uninstall(conn)
        if not triggers:
            tally_sql.uninstall(conn)
        enrolled = []
        for i in range(emails):
            sid = subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, NOW)[0]
            enrolled.append((sid, signups.enroll(conn, sid, "f", State(Stage.NURTURE, NOW), NOW)[0]))
    rows = [{"enrollment_id": e, "subscriber_id": s, "funnel": "f", "step": "e1", "message_id": f"<{e}@b>",
             "status": "queued", "created_at": NOW, "updated_at": NOW, "next_attempt_at": NOW}
            for s, e in enrolled]
    clock = time.process_time if url.startswith("sqlite") else time.perf_counter
    began = clock()
    with db_engine.begin() as conn:
        queries.queue_deliveries(conn, rows)
    for status, sent_at in (("sending", None), ("sent", NOW)):
        with db_engine.begin() as conn:
            conn.execute(sa.update(DELIVERY).values(status=status, sent_at=sent_at))
    written = clock()
    with db_engine.begin() as conn:
        for sid, _ in enrolled:
            queries.record_event(conn, sid, "click", NOW, funnel="f", step="e1", wake=False)
    clicked = clock()
    db_engine.dispose()
    return (written - began) / emails, (clicked - written) / emails


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    # (tally triggers, daily triggers): none, the tallies only, every trigger.
    kinds = {"without": (False, False), "tallies only": (True, False), "with": (True, True)}
    best = {(kind, part): float("inf") for kind in kinds for part in (0, 1)}
    for _ in range(args.rounds):
        for kind, (triggers, daily) in kinds.items():
            if args.database == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    spent = per_email(f"sqlite:///{Path(folder) / 'cost.db'}", args.emails, triggers, daily)
            else:
                url = create_database("funnel_bench_tally_")
                try:
                    spent = per_email(url, args.emails, triggers, daily)
                finally:
                    drop_database(url)
            for part in (0, 1):
                best[(kind, part)] = min(best[(kind, part)], spent[part])
            print(f"{kind + ' the triggers' if kind != 'tallies only' else 'the tallies only':<22}: "
                  f"{spent[0] * 1e6:7.1f} µs per email, {spent[1] * 1e6:7.1f} µs per click")
    what = "CPU" if args.database == "sqlite" else "wall time"
    figures: dict[str, object] = {"database": args.database, "emails": args.emails, "measure": what}
    for part, name in ((0, "email"), (1, "click")):
        without, tallies, with_ = (best[(kind, part)] * 1e6 for kind in kinds)
        print(f"best of {args.rounds}, per {name}: {without:.1f} µs without, {tallies:.1f} µs with the "
              f"tallies only, {with_:.1f} µs with every trigger ({what})")
        figures[f"{name}_without_us"], figures[f"{name}_with_us"] = round(without, 1), round(with_, 1)
        figures[f"{name}_tallies_us"] = round(tallies, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
