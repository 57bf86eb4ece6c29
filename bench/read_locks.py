"""Whether a long read holds back the writers: the guardrail check and a stats report beside a writer.

    python -m bench.scale generate --database sqlite --subscribers 100000 --out scale.db
    python -m bench.read_locks --path scale.db
    python -m bench.read_locks --url postgresql://postgres@127.0.0.1:5432/funnel_scale_...

Runs each read through the engine's real code (the guardrail check the daemon runs every
minute, the report of `funnel stats`) while a writer thread commits one small write
transaction every 10 ms, as the daemon's ticks and signups do, and a health thread runs
/healthz's database check every 10 ms. Prints how long each read took and the longest a
write and a health check waited meanwhile, and, as its last line, one JSON object with
every figure. The writer touches one row of the `meta` table (key "bench.read_locks"), no
subscriber data; writes that gave up ("database is locked") are counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.scale_people import FUNNEL, first_marathon
from bench.workspace import ROOT
from engine.scheduler.guard import check_guardrails
from engine.stats.broadcasts import read_report
from engine.store.db import DbEngine, make_engine, ping
from engine.store.tables import META

KEY = "bench.read_locks"
EVERY_S = 0.01


class _Beside:
    """A thread that runs `action` every EVERY_S and keeps the longest it took and its failures."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.longest = 0.0
        self.failures = 0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                self.action()
            except sa.exc.OperationalError:
                self.failures += 1
            self.longest = max(self.longest, time.perf_counter() - began)
            self.count += 1
            self._stop.wait(EVERY_S)

    def __enter__(self) -> _Beside:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _write(db_engine: DbEngine) -> None:
    with db_engine.begin() as conn:
        conn.execute(sa.update(META).where(META.c.key == KEY).values(updated_at=datetime.now(UTC)))


def time_read(db_engine: DbEngine, read: Callable[[], object], runs: int) -> dict[str, float]:
    """The read's median seconds, and the longest write and health check beside it."""
    seconds: list[float] = []
    with _Beside(lambda: _write(db_engine)) as writer, _Beside(lambda: ping(db_engine)) as health:
        for _ in range(runs):
            began = time.perf_counter()
            read()
            seconds.append(time.perf_counter() - began)
    return {"read_s": round(statistics.median(seconds), 3), "longest_write_s": round(writer.longest, 3),
            "writes_failed": writer.failures, "writes": writer.count,
            "longest_health_s": round(health.longest, 3), "health_failed": health.failures}


def main() -> None:
    """Time the reads; print a table, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", help="a SQLite file made by bench.scale generate")
    parser.add_argument("--url", help="a PostgreSQL database made by bench.scale generate")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if bool(args.path) == bool(args.url):
        parser.error("give --path (SQLite) or --url (PostgreSQL)")
    db_engine = make_engine(f"sqlite:///{args.path}" if args.path else args.url)
    with db_engine.begin() as conn:
        if conn.execute(sa.select(META.c.key).where(META.c.key == KEY)).first() is None:
            conn.execute(sa.insert(META).values(key=KEY, value={}, updated_at=datetime.now(UTC)))
    plans = {FUNNEL: first_marathon(ROOT)}
    reads: dict[str, Callable[[], object]] = {
        "guardrail_check": lambda: check_guardrails(db_engine, plans, datetime.now(UTC)),
        "stats_report": lambda: read_report(db_engine, plans, now=datetime.now(UTC)),
    }
    figures = {name: time_read(db_engine, read, args.runs) for name, read in reads.items()}
    with db_engine.begin() as conn:
        conn.execute(sa.delete(META).where(META.c.key == KEY))
    db_engine.dispose()
    print(f"{'read':<16} {'seconds':>8} {'longest write':>14} {'writes failed':>14} {'longest health':>15}")
    for name, f in figures.items():
        print(f"{name:<16} {f['read_s']:>8.3f} {f['longest_write_s']:>14.3f} "
              f"{f['writes_failed']:>7}/{f['writes']:<6} {f['longest_health_s']:>15.3f}")
    print(json.dumps({"database": db_engine.dialect.name, **figures}))


if __name__ == "__main__":
    main()
