"""How much an idle tick costs with a million enrollments, and how much memory the daemon holds.

    python -m bench.tick [--enrollments 1000000] [--ticks 200] [--database-url URL]

Builds a database (SQLite in a temporary folder by default) with N subscribers, each
enrolled in the shipped first-marathon funnel and due in the future, then runs the
daemon's real tick (reload check, claim, dispatch) with nothing due. The baseline,
measured in the same run on the same database, is one bare `SELECT 1` round trip:
the least any tick that asks the database anything can cost. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.workspace import workspace
from engine.config import Settings
from engine.daemon.wiring import build_daemon
from engine.mail.memory import MemoryTransport
from engine.scheduler.clock import FrozenClock
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import ENROLLMENT, SUBSCRIBER

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHUNK = 20_000


def _rss_mb() -> float:
    """Resident memory now, in MB (VmRSS); falls back to the peak where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(url: str, count: int) -> float:
    """Insert `count` subscribers and enrollments (none due); returns the seconds it took."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    began = time.perf_counter()
    with db_engine.begin() as conn:
        for start in range(0, count, CHUNK):
            ids = range(start + 1, min(start + CHUNK, count) + 1)
            conn.execute(
                SUBSCRIBER.insert(),
                [
                    {
                        "id": i,
                        "email": f"s{i}@example.com",
                        "email_key": f"s{i}@example.com",
                        "name": "",
                        "locale": "en",
                        "timezone": "Europe/Budapest",
                        "status": "active",
                        "fields": {},
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for i in ids
                ],
            )
            # Spread over the next 60 days, as a live list is: nothing is due at NOW.
            conn.execute(
                ENROLLMENT.insert(),
                [
                    {
                        "id": i,
                        "subscriber_id": i,
                        "funnel": "first-marathon",
                        "stage": "nurture",
                        "since": NOW,
                        "segment": "beginner",
                        "step": None,
                        "done": [],
                        "reason": None,
                        "magnet": None,
                        "next_run_at": NOW + timedelta(seconds=60 + i * 5),
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for i in ids
                ],
            )
            print(f"  {ids[-1]:>9,} enrollments", file=sys.stderr, end="\r")
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE"))
    print(file=sys.stderr)
    db_engine.dispose()
    return time.perf_counter() - began


def measure(url: str, project: Path, ticks: int) -> dict[str, float]:
    """Median and p99 of idle ticks and of the SELECT 1 baseline, in milliseconds, and RSS."""
    settings = Settings.model_validate({"secret_key": "bench-" + "b" * 32, "database_url": url})
    daemon = build_daemon(
        settings, project, clock=FrozenClock(NOW), transport=MemoryTransport(), db_engine=make_engine(url)
    )
    rss_before = _rss_mb()

    async def run() -> tuple[list[float], list[float]]:
        loop = asyncio.get_running_loop()
        tick_ms, select_ms = [], []

        def select_one() -> None:
            with daemon.db_engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        for _ in range(ticks):
            began = time.perf_counter()
            report = await daemon.ticker.tick()
            tick_ms.append((time.perf_counter() - began) * 1000)
            assert report.decided == 0 and report.attempted == 0, "the benchmark wants nothing due"
            began = time.perf_counter()
            await loop.run_in_executor(daemon.db_executor, select_one)
            select_ms.append((time.perf_counter() - began) * 1000)
        return tick_ms, select_ms

    tick_ms, select_ms = asyncio.run(run())
    daemon.db_executor.shutdown()
    daemon.db_engine.dispose()
    return {
        "tick_ms_median": statistics.median(tick_ms),
        "tick_ms_p99": _p99(tick_ms),
        "select1_ms_median": statistics.median(select_ms),
        "rss_mb": _rss_mb(),
        "rss_mb_before_ticks": rss_before,
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    """Build the database, measure, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--database-url", help="an empty database to fill (default: a temporary SQLite file)")
    args = parser.parse_args()
    with workspace(args.database_url) as (project, url):
        seconds = fill(url, args.enrollments)
        figures = measure(url, project, args.ticks)
    dialect = url.split(":", 1)[0]
    print(f"{args.enrollments:,} enrollments on {dialect} (filled in {seconds:.0f} s), nothing due:")
    print(f"  idle tick     median {figures['tick_ms_median']:.2f} ms, p99 {figures['tick_ms_p99']:.2f} ms")
    print(f"  SELECT 1      median {figures['select1_ms_median']:.2f} ms (baseline)")
    print(f"  resident memory {figures['rss_mb']:.0f} MB")
    print(
        json.dumps(
            {
                "enrollments": args.enrollments,
                "database": dialect,
                **{k: round(v, 3) for k, v in figures.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
