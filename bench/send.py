"""How fast the engine sends, next to raw aiosmtplib pushing pre-built messages to the same sink.

    python -m bench.send [--subscribers 5000] [--connections 64] [--database-url URL]

N subscribers of the shipped first-marathon funnel are due for their first nurture
email now. The engine's real tick claims them, runs step(), queues the deliveries,
renders each email (Jinja, CSS inlining, the text part), builds the message, sends it
over pooled aiosmtplib connections to Postfix's smtp-sink, and records every outcome.
In the same run, bench/raw_baseline.py sends N pre-built messages of similar size over
the same number of connections to the same sink. The last line is JSON with both rates
and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.machine import others_cores, sample
from bench.messages import build_sample_messages
from bench.raw_baseline import raw_send
from bench.smtp_sink import running_sink
from bench.workspace import workspace
from engine.config import Settings
from engine.daemon.wiring import build_daemon
from engine.scheduler.clock import FrozenClock
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import DELIVERY, ENROLLMENT, SUBSCRIBER

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday inside first-marathon's window (07:00-10:00)


def fill(url: str, count: int) -> None:
    """`count` subscribers in first-marathon's beginner nurture path, due now."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    since = NOW - timedelta(days=3)
    with db_engine.begin() as conn:
        conn.execute(
            SUBSCRIBER.insert(),
            [
                {
                    "id": i,
                    "email": f"runner{i}@example.com",
                    "email_key": f"runner{i}@example.com",
                    "name": f"Runner Number{i}",
                    "locale": "en",
                    "timezone": "UTC",
                    "status": "active",
                    "fields": {},
                    "created_at": since,
                    "updated_at": since,
                }
                for i in range(1, count + 1)
            ],
        )
        conn.execute(
            ENROLLMENT.insert(),
            [
                {
                    "id": i,
                    "subscriber_id": i,
                    "funnel": "first-marathon",
                    "stage": "nurture",
                    "since": since,
                    "segment": "beginner",
                    "step": None,
                    "done": [],
                    "reason": None,
                    "magnet": None,
                    "next_run_at": NOW,
                    "created_at": since,
                    "updated_at": since,
                }
                for i in range(1, count + 1)
            ],
        )
    db_engine.dispose()


def engine_rate(url: str, project: Path, port: int, connections: int, count: int) -> float:
    """Emails per second from the first tick to the last recorded outcome."""
    settings = Settings.model_validate(
        {
            "secret_key": "bench-" + "b" * 32,
            "database_url": url,
            "transport": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "smtp_connections": connections,
            "send_rate": 1e9,
            "batch_size": 1000,
            "base_url": "https://funnel.example",
        }
    )
    daemon = build_daemon(settings, project, clock=FrozenClock(NOW), db_engine=make_engine(url))

    async def run() -> float:
        began = time.perf_counter()
        sent = 0
        while sent < count:
            report = await daemon.ticker.tick()
            sent += report.attempted
            if report.attempted == 0 and report.decided == 0:
                raise RuntimeError("nothing left to send before every email went out")
        elapsed = time.perf_counter() - began
        await daemon.transport.close()
        return count / elapsed

    rate = asyncio.run(run())
    with daemon.db_engine.connect() as conn:
        statuses: dict[str, int] = dict(
            conn.execute(sa.select(DELIVERY.c.status, sa.func.count()).group_by(DELIVERY.c.status)).all()
        )
    daemon.db_executor.shutdown()
    daemon.db_engine.dispose()
    if statuses != {"sent": count}:
        raise RuntimeError(f"not every email was sent: {statuses}")
    return rate


def main() -> None:
    """Fill, send with the engine, send raw, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with workspace(args.database_url) as (project, url):
        fill(url, args.subscribers)
        with running_sink() as port:
            start = sample()
            engine = engine_rate(url, project, port, args.connections, args.subscribers)
            middle = sample()
            raw = asyncio.run(raw_send(port, build_sample_messages(args.subscribers), args.connections))
            end = sample()
    busy = max(others_cores(start, middle), others_cores(middle, end))
    print(f"{args.subscribers:,} emails, {args.connections} connections, to smtp-sink on loopback")
    print(f"  engine (decide, render, build, send, record): {engine:8,.0f} emails/s")
    print(f"  raw aiosmtplib, pre-built messages:           {raw:8,.0f} emails/s")
    print(
        f"  ratio {engine / raw:.2f}"
        + (f" (other processes kept {busy:.1f} cores busy)" if busy > 0.1 else ""),
        file=sys.stdout,
    )
    print(
        json.dumps(
            {
                "emails": args.subscribers,
                "connections": args.connections,
                "engine_emails_per_s": round(engine),
                "raw_emails_per_s": round(raw),
                "ratio": round(engine / raw, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
