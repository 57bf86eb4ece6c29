"""What the stats triggers cost an email's writes (and a click's), with and without them.

    python -m bench.tally_cost [--emails 3000] [--rounds 4] [--database sqlite|postgresql]

The engine writes a delivery row when it decides an email, marks it `sending` when a
daemon claims it and `sent` when the server took it. This does the same to N rows in
three statements, in a new database with the tally triggers (migration 0005) and in one
without them (`tally_sql.uninstall`), alternating; then records a click on each email
(`queries.record_event`, one transaction), which sets the email's `acted` bit. It prints
the best of the rounds per email and per click: the process's CPU on SQLite (the
database runs in this process), the wall time on PostgreSQL (the server's work is in
another process). The last line is JSON.
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
from engine.store import queries, signups, subscribers, tally_sql
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import DELIVERY

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def per_email(url: str, emails: int, triggers: bool) -> tuple[float, float]:
    """Seconds per email of the three writes, and per click (CPU on SQLite, wall on PostgreSQL)."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    with db_engine.begin() as conn:
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
    for status in ("sending", "sent"):
        with db_engine.begin() as conn:
            conn.execute(sa.update(DELIVERY).values(status=status))
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
    best = {(t, part): float("inf") for t in (True, False) for part in (0, 1)}
    for _ in range(args.rounds):
        for triggers in (False, True):
            if args.database == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    spent = per_email(f"sqlite:///{Path(folder) / 'cost.db'}", args.emails, triggers)
            else:
                url = create_database("funnel_bench_tally_")
                try:
                    spent = per_email(url, args.emails, triggers)
                finally:
                    drop_database(url)
            for part in (0, 1):
                best[(triggers, part)] = min(best[(triggers, part)], spent[part])
            print(f"{'with' if triggers else 'without'} the triggers: {spent[0] * 1e6:7.1f} µs per email, "
                  f"{spent[1] * 1e6:7.1f} µs per click")
    what = "CPU" if args.database == "sqlite" else "wall time"
    figures: dict[str, object] = {"database": args.database, "emails": args.emails, "measure": what}
    for part, name in ((0, "email"), (1, "click")):
        without, with_ = best[(False, part)] * 1e6, best[(True, part)] * 1e6
        print(f"best of {args.rounds}, per {name}: {without:.1f} µs without, {with_:.1f} µs with ({what})")
        figures[f"{name}_without_us"], figures[f"{name}_with_us"] = round(without, 1), round(with_, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
