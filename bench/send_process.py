"""One engine process of `python -m bench.send --processes N`: ticks the shared database until done.

    python -m bench.send_process URL PROJECT SMTP_PORT CONNECTIONS NOW BATCH_SIZE [DKIM_KEYS [LOG_FILE]]

Builds the daemon's parts (as `funnel run` does, with a frozen clock at NOW, bench.send's moment),
prints `ready`, waits for `go` on stdin, then ticks until a tick finds nothing to do and the
database has nothing due or queued that another process has not claimed. The last line is
JSON: when it began and ended (time.time(), comparable between processes), how many emails
it attempted, the CPU seconds its ticks used, and all it used (start-up included). With
LOG_FILE, it logs as `funnel run` does (JSON lines at info) into a pipe that another process
reads into that file (bench/collector.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from bench.collector import engine_logs
from engine.config import Settings
from engine.daemon import heap
from engine.daemon.wiring import Daemon, build_daemon
from engine.scheduler.clock import FrozenClock
from engine.store.db import DbEngine, make_engine
from engine.store.tables import DELIVERY, ENROLLMENT


async def send_all(daemon: Daemon, count: int) -> None:
    """Tick until `count` emails were attempted, then close the SMTP pool (every bench.send engine run)."""
    sent = 0
    while sent < count:
        report = await daemon.ticker.tick()
        sent += report.attempted
        if report.attempted == 0 and report.decided == 0:
            raise RuntimeError("nothing left to send before every email went out")
    await daemon.transport.close()


def bench_settings(url: str, port: int, connections: int, batch_size: int = 1000,
                   dkim_keys: str = "") -> Settings:
    """The daemon's settings of every bench.send engine run: SMTP to the sink, no rate limit."""
    return Settings.model_validate(
        {
            "secret_key": "bench-" + "b" * 32,
            "database_url": url,
            "transport": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "smtp_connections": connections,
            "send_rate": 1e9,
            "batch_size": batch_size,
            "base_url": "https://funnel.example",
            "dkim_keys": dkim_keys,  # --dkim: keys bench.send made in the project (empty: unsigned)
        }
    )


def _left(db_engine: DbEngine, now: datetime) -> int:
    """Enrollments due and deliveries queued: work some process can still claim."""
    with db_engine.connect() as conn:
        due = conn.execute(
            sa.select(sa.func.count()).select_from(ENROLLMENT).where(ENROLLMENT.c.next_run_at <= now)
        ).scalar_one()
        queued = conn.execute(
            sa.select(sa.func.count()).select_from(DELIVERY).where(DELIVERY.c.status == "queued")
        ).scalar_one()
    return int(due) + int(queued)


def main() -> None:
    """Read the arguments; send with the engine's logs collected as `funnel run`'s would be."""
    url, project, port, connections = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    now, batch_size = datetime.fromisoformat(sys.argv[5]), int(sys.argv[6])
    dkim_keys = sys.argv[7] if len(sys.argv) > 7 else ""
    with engine_logs(Path(sys.argv[8]) if len(sys.argv) > 8 and sys.argv[8] else None):
        _send(url, bench_settings(url, port, connections, batch_size, dkim_keys), project, now)


def _send(url: str, settings: Settings, project: Path, now: datetime) -> None:
    """Build the daemon, wait for go, tick until the shared work is done, print the JSON line."""
    daemon = build_daemon(settings, project, clock=FrozenClock(now),
                          db_engine=make_engine(url), guard=False)
    heap.settle()  # as funnel run does once its daemon is built
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("bench.send_process: expected 'go' on stdin")

    async def run() -> tuple[float, float, int]:
        began = time.time()
        attempted = 0
        while True:
            report = await daemon.ticker.tick()
            attempted += report.attempted
            if report.attempted == 0 and report.decided == 0:
                if _left(daemon.db_engine, now) == 0:
                    break
                await asyncio.sleep(0.005)  # another process holds the lock or the rows: look again
        ended = time.time()
        await daemon.transport.close()
        return began, ended, attempted

    cpu = time.process_time()
    began, ended, attempted = asyncio.run(run())
    cpu = time.process_time() - cpu
    daemon.db_executor.shutdown()
    daemon.db_engine.dispose()
    print(json.dumps({"began": began, "ended": ended, "attempted": attempted, "cpu_seconds": round(cpu, 3),
                      "cpu_total": round(time.process_time(), 3)}))


if __name__ == "__main__":
    main()
