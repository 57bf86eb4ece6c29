"""How fast the engine sends, next to raw aiosmtplib pushing pre-built messages to the same sink.

    python -m bench.send [--subscribers 5000] [--connections 64] [--processes 1] [--batch-size 1000]
                         [--database sqlite|postgresql | --database-url URL] [--dkim ed25519|rsa|both]

N subscribers of the shipped first-marathon funnel are due for their first nurture
email now. The engine's real tick claims them, runs step(), queues the deliveries,
renders each email (Jinja, CSS inlining, the text part), builds the message, sends it
over pooled aiosmtplib connections to Postfix's smtp-sink, and records every outcome.
With `--processes P` (P > 1), P engine processes (bench/send_process.py, each with
`--connections` connections, as `funnel run --workers P` runs them) tick the one database
at once, started together; the rate is from the first one's start to the last one's end.
In the same run, bench/raw_baseline.py sends N pre-built messages of similar size from
one process over the same number of connections in all (P x connections) to the same
sink, once right before the engine and once right after it; the faster of the two is the
baseline (the machine's speed drifts within a run: a baseline measured in a slow moment
would flatter the ratio). Every email must be sent exactly once: each delivery row `sent`,
and smtp-sink counting exactly N messages from the engine. The last line is JSON with the
rates and their ratio.

With `--dkim`, the engine DKIM-signs every email (keys made for the funnel's sender domain,
as `funnel dkim keygen` makes them); the report adds what signing alone costs per email,
timed on the raw baseline's messages in this process.

The engine logs as `funnel run` does (a JSON line at info for each email queued and each
email sent) into a pipe that another process reads line by line into a file, as journald
or docker read a daemon's stderr (bench/collector.py; before 2026-12-06 it logged to the
file itself, which spares the pipe's cost); `--no-logs` leaves logging unset, as this
benchmark ran before 2026-12-05 (its earlier figures in docs/benchmarks.md are without logs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.collector import engine_logs
from bench.machine import others_cores, sample
from bench.messages import build_sample_messages
from bench.postgres import create_database, drop_database
from bench.raw_baseline import raw_send
from bench.send_process import bench_settings, send_all
from bench.smtp_sink import read_counters, running_sink
from bench.workspace import workspace
from engine.daemon import heap
from engine.daemon.wiring import build_daemon
from engine.mail.dkimkeys import KeyEntry, KeyType, generate, private_pem, read_key
from engine.mail.signing import Signer
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


DKIM_DOMAIN = "firstmarathon.example"  # first-marathon's sender domain


def make_dkim_keys(project: Path, kind: str) -> str:
    """Keys of `kind` (ed25519, rsa or both) for the sender domain in `project`; their dkim_keys value."""
    if kind == "none":
        return ""
    entries = []
    for key_type in (KeyType.ED25519, KeyType.RSA) if kind == "both" else (KeyType(kind),):
        path = project / "dkim" / f"{key_type.value}.{DKIM_DOMAIN}.pem"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(private_pem(generate(key_type)))
        entries.append(f"{DKIM_DOMAIN} {key_type.value} dkim/{path.name}")
    return "; ".join(entries)


def sign_cost(project: Path, dkim_keys: str, count: int) -> float:
    """Milliseconds of CPU that Signer.sign takes per email, on `count` messages like the engine's."""
    if not dkim_keys:
        return 0.0
    keys = []
    for entry in dkim_keys.split("; "):
        _, selector, name = entry.split()
        keys.append(read_key(KeyEntry(DKIM_DOMAIN, selector, name), (project / name).read_bytes()))
    signer = Signer(keys)
    # The baseline's messages, from the domain the keys sign for.
    messages = [data.replace(b"<news@shop.example>", f"<maya@{DKIM_DOMAIN}>".encode(), 1)
                for _, _, data in build_sample_messages(count)]
    cpu = time.process_time()
    for data in messages:
        signer.sign(data)
    return (time.process_time() - cpu) / count * 1000


def engine_rate(url: str, project: Path, port: int, connections: int, count: int,
                batch_size: int, dkim_keys: str = "") -> tuple[float, float]:
    """Emails per second from the first tick to the last recorded outcome, in this process; CPU seconds."""
    threshold = gc.get_threshold()
    daemon = build_daemon(bench_settings(url, port, connections, batch_size, dkim_keys), project,
                          clock=FrozenClock(NOW), db_engine=make_engine(url))
    heap.settle()  # as funnel run does once its daemon is built

    async def run() -> float:
        began = time.perf_counter()
        await send_all(daemon, count)
        return count / (time.perf_counter() - began)

    cpu = time.process_time()
    try:
        rate = asyncio.run(run())
    finally:
        gc.unfreeze()  # the raw baseline runs next in this process, with the collector as it was
        gc.set_threshold(*threshold)
    cpu = time.process_time() - cpu
    daemon.db_executor.shutdown()
    daemon.db_engine.dispose()
    return rate, cpu


def processes_rate(url: str, project: Path, port: int, connections: int, count: int,
                   processes: int, batch_size: int, dkim_keys: str = "",
                   log_file: Path | None = None) -> tuple[float, list[dict[str, float]]]:
    """Emails per second of `processes` engine processes ticking `url` together, and each one's report."""
    command = [sys.executable, "-m", "bench.send_process", url, str(project), str(port), str(connections),
               NOW.isoformat(), str(batch_size), dkim_keys, str(log_file or "")]
    started = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    try:
        for process in started:  # each has built its daemon (imports, the release) before the clock runs
            assert process.stdin is not None and process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("an engine process failed to start (its error is above)")
        for process in started:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for process in started:
            out, _ = process.communicate(timeout=600)
            if process.returncode != 0:
                raise RuntimeError(f"an engine process exited with {process.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
    if sum(r["attempted"] for r in reports) != count:
        raise RuntimeError(f"the processes attempted {[r['attempted'] for r in reports]}, not {count} in all")
    elapsed = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    return count / elapsed, reports


def check_sent_once(url: str, count: int, sink_messages: int) -> None:
    """Every delivery `sent`, and the sink got exactly `count` messages: none lost, none twice."""
    db_engine = make_engine(url)
    with db_engine.connect() as conn:
        statuses: dict[str, int] = dict(
            conn.execute(sa.select(DELIVERY.c.status, sa.func.count()).group_by(DELIVERY.c.status)).all()
        )
    db_engine.dispose()
    if statuses != {"sent": count}:
        raise RuntimeError(f"not every email was sent: {statuses}")
    if sink_messages != count:
        raise RuntimeError(f"smtp-sink received {sink_messages:,} messages for {count:,} emails")


def _lines(log_file: Path | None) -> int:
    """How many lines the engine logged (0: it did not log)."""
    if log_file is None or not log_file.exists():
        return 0
    with log_file.open("rb") as lines:
        return sum(1 for _ in lines)


@contextmanager
def _database(kind: str, url: str | None) -> Iterator[str | None]:
    """The --database-url, a throwaway PostgreSQL database, or None (a SQLite file in the workspace)."""
    if url or kind == "sqlite":
        yield url
        return
    created = create_database("funnel_bench_send_")
    try:
        yield created
    finally:
        drop_database(created)


def main() -> None:
    """Fill, send with the engine, send raw, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64, help="SMTP connections per engine process")
    parser.add_argument("--processes", type=int, default=1, help="engine processes ticking the one database")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="enrollments or deliveries one claim takes (several processes share "
                             "the work by claims: 5,000 emails in claims of 1,000 split 3:2 at best)")
    parser.add_argument("--database-url", help="an empty database (default: per --database)")
    parser.add_argument("--dkim", choices=("none", "ed25519", "rsa", "both"), default="none",
                        help="DKIM-sign every email with these keys (both: two signatures an email)")
    parser.add_argument("--no-logs", action="store_true",
                        help="leave logging unset (the default logs as `funnel run` does, into a read pipe)")
    args = parser.parse_args()
    reports: list[dict[str, float]] = []
    with _database(args.database, args.database_url) as given, workspace(given) as (project, url), \
            tempfile.TemporaryDirectory() as scratch:
        fill(url, args.subscribers)
        dkim_keys = make_dkim_keys(project, args.dkim)
        counters = Path(scratch) / "sink-counters"
        log_file = None if args.no_logs else Path(scratch) / "engine.log"
        with running_sink(counters_file=counters) as port:
            connections = args.connections * args.processes
            messages = build_sample_messages(args.subscribers)
            raw_before = asyncio.run(raw_send(port, messages, connections))
            start = sample()
            probe = read_counters(counters).messages  # what the sink took before the engine's run
            if args.processes > 1:
                engine, reports = processes_rate(
                    url, project, port, args.connections, args.subscribers, args.processes, args.batch_size,
                    dkim_keys, log_file,
                )
                cpu = sum(r["cpu_seconds"] for r in reports)
            else:
                with engine_logs(log_file):
                    engine, cpu = engine_rate(url, project, port, args.connections, args.subscribers,
                                              args.batch_size, dkim_keys)
            middle = sample()
            check_sent_once(url, args.subscribers, read_counters(counters).messages - probe)
            log_lines = _lines(log_file)
            raw_after = asyncio.run(raw_send(port, messages, connections))
            end = sample()
            raw = max(raw_before, raw_after)
        signing = sign_cost(project, dkim_keys, min(args.subscribers, 2000))
    # The engine processes have exited by `middle`, so bench.machine cannot see them as this
    # process's children: their CPU is taken out of "others" here.
    ours = sum(r["cpu_total"] for r in reports) / max(middle.wall - start.wall, 1e-9)
    busy = max(others_cores(start, middle) - ours, others_cores(middle, end))
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"{args.subscribers:,} emails, {args.processes} engine process(es) x {args.connections} "
          f"connections, {database}, to smtp-sink on loopback")
    print(f"  engine (decide, render, build, send, record): {engine:8,.0f} emails/s")
    for i, report in enumerate(reports, 1):
        print(f"    process {i}: {report['attempted']:,.0f} emails, {report['cpu_seconds']:.2f} CPU s")
    print(f"  engine CPU per email (every engine process): {cpu / args.subscribers * 1000:8.3f} ms")
    if dkim_keys:
        print(f"  of which DKIM signing ({args.dkim}), alone:       {signing:8.3f} ms")
    if log_file is not None:
        print(f"  log lines written (as funnel run logs):       {log_lines:8,}")
    print(f"  raw aiosmtplib, pre-built messages:           {raw:8,.0f} emails/s "
          f"(the faster of {raw_before:,.0f} before and {raw_after:,.0f} after)")
    print(
        f"  ratio {engine / raw:.2f}"
        + (f" (other processes kept {busy:.1f} cores busy)" if busy > 0.1 else ""),
        file=sys.stdout,
    )
    print(
        json.dumps(
            {
                "emails": args.subscribers,
                "processes": args.processes,
                "connections": args.connections,
                "batch_size": args.batch_size,
                "database": database,
                "engine_emails_per_s": round(engine),
                "raw_emails_per_s": round(raw),
                "raw_before_after": [round(raw_before), round(raw_after)],
                "ratio": round(engine / raw, 3),
                "engine_cpu_ms_per_email": round(cpu / args.subscribers * 1000, 3),
                "dkim": args.dkim,
                "dkim_sign_ms_per_email": round(signing, 3),
                "logs": log_file is not None,
                "exactly_once": True,
            }
        )
    )


if __name__ == "__main__":
    main()
