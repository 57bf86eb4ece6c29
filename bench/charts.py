"""What a chart over time costs at scale: the kept daily tallies against counting the rows.

    python -m bench.charts --url sqlite:////tmp/copy.db [--runs 3]
    python -m bench.charts --url postgresql://postgres@127.0.0.1:5432/copy

On a generated list (`python -m bench.scale generate`, upgraded to migration 0008: the
command upgrades a copy it is given; never point it at a list others use), for ranges of
the last 30, 90 and 365 days before the list's newest activity it times, median of
`--runs`: reading the range's days from the daily tallies (`daily.day_counts`, what the
chart pages do), the same for one email, and counting the same range from the rows
(`daily.recount_statements` narrowed to the range: what a chart without kept counts would
run). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import sqlalchemy as sa

from bench.scale_people import FUNNEL
from engine.store import daily
from engine.store.db import make_engine, snapshot
from engine.store.migrate import upgrade
from engine.store.tables import DELIVERY, EVENT

RANGES = (30, 90, 365)


def median_of(runs: int, once: Callable[[], object]) -> float:
    """The median wall time of `runs` calls, in seconds."""
    spent = []
    for _ in range(runs):
        began = time.perf_counter()
        once()
        spent.append(time.perf_counter() - began)
    return statistics.median(spent)


def main() -> None:
    """Upgrade, time each read, print a table and the JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--recount",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time counting each range from the rows (slow)",
    )
    args = parser.parse_args()
    db_engine = make_engine(args.url)
    began = time.perf_counter()
    upgrade(db_engine)
    figures: dict[str, float] = {"upgrade_s": round(time.perf_counter() - began, 2)}
    with db_engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(EVENT.c.at))).scalar_one()
        step = conn.execute(
            sa.select(DELIVERY.c.step).where(DELIVERY.c.funnel == FUNNEL).limit(1)
        ).scalar_one()
    last = newest.date()
    for days in RANGES:
        first = last - timedelta(days=days - 1)

        def read(step: str | None = None, first: object = first) -> object:
            with snapshot(db_engine) as conn:
                return daily.day_counts(conn, FUNNEL, first, last, step)  # type: ignore[arg-type]

        figures[f"read_{days}d_s"] = round(median_of(args.runs, read), 4)
        figures[f"read_{days}d_step_s"] = round(median_of(args.runs, lambda: read(step)), 4)
        with snapshot(db_engine) as conn:
            figures[f"read_{days}d_days"] = len({c.day for c in daily.day_counts(conn, FUNNEL, first, last)})
        if args.recount:
            start = datetime.combine(first, clock_time(0), UTC)
            end = datetime.combine(last + timedelta(days=1), clock_time(0), UTC)

            def count(start: datetime = start, end: datetime = end) -> object:
                with snapshot(db_engine) as conn:
                    return [conn.execute(s).all() for s in daily.recount_statements(conn, FUNNEL, start, end)]

            figures[f"rows_{days}d_s"] = round(median_of(1, count), 2)
        print(
            f"last {days:>3} days: read {figures[f'read_{days}d_s'] * 1000:7.1f} ms, one email "
            f"{figures[f'read_{days}d_step_s'] * 1000:7.1f} ms"
            + (f", counted from the rows {figures[f'rows_{days}d_s']:6.2f} s" if args.recount else "")
        )
    db_engine.dispose()
    print(
        json.dumps(
            {
                "command": "charts",
                "database": db_engine.dialect.name,
                "step": step,
                "last_day": last.isoformat(),
                **figures,
            }
        )
    )


if __name__ == "__main__":
    main()
