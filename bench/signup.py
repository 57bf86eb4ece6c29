"""How many signups a second `POST /subscribe` takes, next to a bare route of the same server.

    python -m bench.signup [--seconds 10] [--concurrency 32] [--database sqlite|postgresql]

The daemon runs as `funnel run` runs it (bench/signup_server.py: the real Runner, its
ticks every second sending to the outbox, uvicorn serving the real app) in a process
of its own, on the shipped first-marathon funnel (double opt-in), with a fresh
database: a SQLite file, or a throwaway PostgreSQL database on 127.0.0.1:5432; its stderr
is a pipe that another process reads into a file, as journald or docker read a daemon's
(bench/collector.py; before 2026-12-06 the daemon wrote the file itself). Client
processes (bench/httpload.py) keep `--concurrency` requests in flight, each signup
for a new address.

In the same run, on the same server: `POST /bare` (200 and nothing else) with one
client process and with `--clients` of them (when more clients give more, the clients
were the limit), then `POST /subscribe` with `--clients`. The signup rate is compared
with the bare one at the same number of clients. Afterwards the database must hold as
many subscribers as signups were answered 201 (303 with --form). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.collector import collector
from bench.healthz import wait_until_healthy
from bench.httpload import Measured, measure
from bench.machine import sample
from bench.postgres import create_database, drop_database
from bench.workspace import ROOT, workspace
from engine.store.db import make_engine
from engine.store.tables import DELIVERY, SUBSCRIBER

WARMUP_SECONDS = 1.0  # requests before the clock starts: connections open, code paths warm
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")  # /proc times are in clock ticks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cpu_of(pid: int) -> float:
    """CPU seconds a process (all its threads) used so far, from /proc; 0 where it is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / _CLOCK_TICK


@contextmanager
def database(kind: str, sqlite_url: str) -> Iterator[str]:
    """The URL of an empty database: `sqlite_url`, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield sqlite_url
        return
    url = create_database("funnel_bench_")
    try:
        yield url
    finally:
        drop_database(url)


@contextmanager
def server(project: Path, url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The daemon serving on a free loopback port: (base URL, its process); stopped with SIGTERM."""
    port = _free_port()
    log_path = project.parent / "server.log"
    # Its stderr is a pipe a collector reads, as journald or docker read funnel run's.
    with collector(log_path) as log:
        command = [sys.executable, "-m", "bench.signup_server", str(project), url, str(port)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(process, base_url, log_path, 60)
            yield base_url, process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _py_spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling every thread of `pid` for the warm-up and `seconds`, written as collapsed stacks."""
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(round(seconds + WARMUP_SECONDS)),
               "--rate", "250", "--threads", "--nonblocking", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def _log_problems(path: Path) -> Counter[str]:
    """Warnings and errors the daemon logged, by level and action ("error tick_failed")."""
    found: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            found["error unstructured"] += 1  # a traceback or a library's own line
            continue
        if entry.get("level") in ("warning", "error"):
            found[f"{entry['level']} {entry.get('action')}"] += 1
    return found


def _count(url: str) -> tuple[int, dict[str, int]]:
    """Subscribers in the database, and deliveries by status."""
    db_engine = make_engine(url)
    with db_engine.connect() as conn:
        subscribers = conn.execute(sa.select(sa.func.count()).select_from(SUBSCRIBER)).scalar_one()
        by_status = conn.execute(sa.select(DELIVERY.c.status, sa.func.count()).group_by(DELIVERY.c.status))
        deliveries = {str(status): int(count) for status, count in by_status}
    db_engine.dispose()
    return int(subscribers), deliveries


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _figures(m: Measured) -> dict[str, float]:
    if not m.latencies_ms:
        return {"req_per_s": 0.0, "p50_ms": -1.0, "p99_ms": -1.0}
    return {"req_per_s": round(m.rate, 1), "p50_ms": round(statistics.median(m.latencies_ms), 2),
            "p99_ms": round(_p99(m.latencies_ms), 2)}


def _line(label: str, m: Measured) -> str:
    f = _figures(m)
    return (f"  {label:<32} {f['req_per_s']:7,.0f} req/s   p50 {f['p50_ms']:6.1f} ms   "
            f"p99 {f['p99_ms']:6.1f} ms")


def _cpu_per_request(found: Results) -> dict[str, float]:
    """Milliseconds of the daemon's CPU per answered request, per run (ticks included).

    Less noisy than the rates when other work shares the cores: a run that got half a
    core still spends the same CPU per request.
    """
    return {name: round(1000 * found.cpu[name][0] / m.rate, 3) if m.rate else 0.0
            for name, m in found.runs.items()}


def _cpu_ratio(per_request: dict[str, float], clients: int) -> float:
    """The bare route's CPU per request over the signup's: the ratio if the daemon had a core to itself."""
    signup = per_request["signup"]
    return per_request[f"bare_{clients}"] / signup if signup else 0.0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'es' if count != 1 else ''}"


@dataclass
class Results:
    """Everything one benchmark run measured."""

    runs: dict[str, Measured] = field(default_factory=dict)
    cpu: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # cores: daemon, clients, rest
    ticks: dict[str, int] = field(default_factory=dict)  # during the signup run
    writer: dict[str, int] = field(default_factory=dict)  # commits and jobs during the signup run
    sent_during_signup: int = 0
    signup_wall: float = 1.0
    subscribers: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)
    problems: Counter[str] = field(default_factory=Counter)


def run(args: argparse.Namespace) -> Results:
    """Start the daemon and the client processes; measure bare, bare again, signup; count."""
    body = "form" if args.form else "json"
    tag = uuid.uuid4().hex[:8]
    found = Results()
    plan = [("bare_1", "/bare", 1), (f"bare_{args.clients}", "/bare", args.clients),
            ("signup", "/subscribe", args.clients)]
    with workspace(None) as (project, sqlite_url), database(args.database, sqlite_url) as url, \
            ProcessPoolExecutor(args.clients, mp_context=get_context("spawn")) as pool, \
            server(project, url) as (base_url, process):
        list(pool.map(time.sleep, [0.5] * args.clients))  # every client process started before any clock
        for name, path, processes in plan:
            if name in found.runs:  # --clients 1: the check is the compared run
                continue
            signup = name == "signup"
            profiler = _py_spy(process.pid, args.py_spy, args.seconds) if signup and args.py_spy else None
            ticks, sent = httpx.get(f"{base_url}/bench/ticks").json(), _count(url)[1].get("sent", 0)
            start, daemon_cpu = sample(), _cpu_of(process.pid)
            found.runs[name] = measured = measure(
                pool, base_url, path, body if signup else "none", args.concurrency, processes,
                args.seconds, WARMUP_SECONDS, f"{tag}-{name}", args.client)
            end, daemon_used = sample(), _cpu_of(process.pid) - daemon_cpu
            wall = end.wall - start.wall
            # The machine's busy time less ours, the daemon's and the clients': a local
            # PostgreSQL's backends land in "everything else".
            client_used = measured.cpu_seconds
            others = (end.machine - start.machine) - (end.own - start.own) - daemon_used - client_used
            found.cpu[name] = (daemon_used / wall, client_used / wall, max(others, 0.0) / wall)
            if signup:
                after = httpx.get(f"{base_url}/bench/ticks").json()
                found.ticks = {k: after[k] - ticks[k] for k in ("started", "finished", "decided")}
                found.writer = {k: after[k] - ticks[k] for k in ("commits", "jobs")}
                found.sent_during_signup = _count(url)[1].get("sent", 0) - sent
                found.signup_wall = wall
            if profiler is not None:
                profiler.wait(60)
        found.subscribers, found.deliveries = _count(url)  # a 201 goes out after its commit: none lag
        found.problems = _log_problems(project.parent / "server.log")
    return found


def report(args: argparse.Namespace, found: Results) -> bool:
    """Print the figures, the checks and the JSON line; whether the count check passed."""
    body, success = ("form", 303) if args.form else ("json", 201)
    signup, bare, bare_1 = found.runs["signup"], found.runs[f"bare_{args.clients}"], found.runs["bare_1"]
    answered = signup.statuses[success]
    other = {status: n for status, n in signup.statuses.items() if status != success}
    count_ok = found.subscribers == answered and not other
    ratio = signup.rate / bare.rate if bare.rate else 0.0
    gain = (bare.rate - bare_1.rate) / bare_1.rate if bare_1.rate else 0.0
    clients = _plural(args.clients, "client process")
    print(f"POST /subscribe ({body}, a new address each, double opt-in) against POST /bare on the same "
          f"daemon: {args.database}, {args.concurrency} in flight, {args.seconds:g} s each, "
          f"{args.client} client")
    print(_line("bare, 1 client process", bare_1))
    if args.clients != 1:
        print(_line(f"bare, {clients}", bare))
    print(_line(f"signup, {clients}", signup))
    print(f"  ratio {ratio:.2f} (signup / bare, both with {clients}; aim: 0.40 or more)")
    if args.clients != 1:
        verdict = "the clients limit the bare figure" if gain > 0.10 else "the clients are not the limit"
        print(f"  client check: bare with {clients} {gain:+.0%} against 1 ({verdict})")
    print(f"  count check: {found.subscribers:,} subscribers in the database, {answered:,} signups "
          f"answered {success}" + (f", other answers {other}" if other else "")
          + (": ok" if count_ok else ": MISMATCH"))
    ticks, sent = found.ticks, found.sent_during_signup
    waiting = sum(found.deliveries.values()) - found.deliveries.get("sent", 0)
    print(f"  ticks during the signup run: {ticks['started']} started, {ticks['finished']} finished; "
          f"{sent:,} confirmation emails sent to the outbox ({sent / found.signup_wall:.1f}/s; "
          f"send_rate 20/s); at the end {waiting:,} decided and waiting")
    if found.writer["commits"]:
        print(f"  web writer: {found.writer['commits']:,} durable commits, "
              f"{found.writer['jobs'] / found.writer['commits']:.1f} signups each on average")
    logged = ", ".join(f"{n:,} {what}" for what, n in found.problems.most_common())
    print(f"  daemon log: {logged or 'no warnings or errors'}")
    for name, (daemon_cores, client_cores, others) in found.cpu.items():
        print(f"  cpu during {name}: daemon {daemon_cores:.2f} cores, clients {client_cores:.2f}, "
              f"everything else {others:.2f} (of {os.cpu_count()})")
    per_request = _cpu_per_request(found)
    cpu_ratio = _cpu_ratio(per_request, args.clients)
    print("  daemon cpu per request: " + ", ".join(f"{name} {ms:.3f} ms" for name, ms in per_request.items())
          + f"; cpu ratio {cpu_ratio:.2f} (bare / signup: the ratio with a core of its own)")
    print(json.dumps({
        "database": args.database,
        "concurrency": args.concurrency,
        "clients": args.clients,
        "seconds": args.seconds,
        "body": body,
        "client": args.client,
        "bare_1_client": _figures(bare_1),
        "bare": _figures(bare),
        "signup": _figures(signup),
        "ratio": round(ratio, 3),
        "subscribers": found.subscribers,
        "signups_answered": answered,
        "count_ok": count_ok,
        "ticks_during_signup": ticks,
        "confirmations_sent_during_signup": sent,
        "writer_during_signup": found.writer,
        "deliveries_at_end": found.deliveries,
        "log_problems": dict(found.problems),
        "cpu_cores": {name: [round(v, 2) for v in values] for name, values in found.cpu.items()},
        "daemon_cpu_ms_per_request": per_request,
        "cpu_ratio": round(cpu_ratio, 3),
    }))
    return count_ok


def main() -> None:
    """Parse the options, run, print; exit 1 when the database and the answers disagree."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight, over all clients")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=2, help="client processes of the compared runs")
    parser.add_argument("--form", action="store_true", help="post URL-encoded forms (303) instead of JSON")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="the HTTP client (bench/httpload.py says why raw is the default)")
    parser.add_argument("--py-spy", metavar="FILE", type=Path,
                        help="record the daemon with py-spy during the signup run, as collapsed stacks")
    args = parser.parse_args()
    if not 1 <= args.clients <= args.concurrency:
        parser.error("--clients must be between 1 and --concurrency")
    if not report(args, run(args)):
        sys.exit(1)


if __name__ == "__main__":
    main()
