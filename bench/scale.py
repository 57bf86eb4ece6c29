"""A large first-marathon list, and how long the operator's reads take on it.

    python -m bench.scale generate --database sqlite --subscribers 100000 [--out PATH]
    python -m bench.scale generate --database postgresql --subscribers 100000 [--url URL]
    python -m bench.scale time --database sqlite --path PATH
    python -m bench.scale time --database postgresql --url URL [--pages-only]
    python -m bench.scale drop --url URL

`generate` makes the engine's schema (engine/store/migrate.py upgrade) and fills it with N
subscribers of the shipped first-marathon funnel spread over every stage, with their
consents, deliveries, events and milestones as the engine writes them (bench/scale_people.py);
SQLite by executemany in big transactions, PostgreSQL by COPY (bench/scale_load.py). On
PostgreSQL without --url it creates a database funnel_scale_<random> on 127.0.0.1:5432
(user postgres, trust) and prints its URL; `drop` removes it. A million subscribers take
about 4.4 GB on either database; when the disk cannot hold N, it makes the most that
fit. Nothing in the database is due for six hours after it was generated, so a daemon
started on it is idle: time it within those hours.

`time` runs each operator read through the engine's real code, median of 3: the `funnel`
commands as processes (start-up included, as the operator waits for it), the guardrail
check in this process, and the dashboard and /api/stats over HTTP from a daemon started
as `funnel run`, whose resident memory is read while idle. It prints a table and, as
its last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.healthz import wait_until_healthy
from bench.postgres import create_database, drop_database
from bench.scale_load import ORDER, Loader, PostgresLoader, SqliteLoader
from bench.scale_people import FUNNEL, Ids, Population, first_marathon
from bench.workspace import ROOT
from engine.scheduler.guard import check_guardrails
from engine.store import daily_sql, tallies, tally_sql
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import ENROLLMENT, SUBSCRIBER

BATCH = 20_000  # subscribers per transaction
RUNS = 3
CHART_STEP = "b-shoes"  # an email most of the list got: its chart reads the most days and keys
SECRET = "bench-scale-" + "s" * 32
PASSWORD = "bench-scale-password"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
# What N=1,000,000 takes on disk, measured (docs/benchmarks.md); --subscribers is checked against it.
BYTES_PER_SUBSCRIBER = {"sqlite": 4_400, "postgresql": 4_500}


# --- generate ------------------------------------------------------------------------------


def generate(url: str, count: int, seed: int = 14) -> dict[str, float]:
    """Fill the (empty) database at `url` with `count` subscribers; figures of the load."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    dialect = db_engine.dialect.name
    with db_engine.begin() as conn:
        # Loaded without the stats triggers (PostgreSQL's COPY skips them anyway), then the
        # tallies are counted once, as migration 0005 does for a list that is there.
        tally_sql.uninstall(conn)
        daily_sql.uninstall(conn)
    db_engine.dispose()
    now = int(time.time()) // 60 * 60
    population = Population(first_marathon(ROOT), now, seed)
    loader: Loader = (SqliteLoader(str(sa.engine.make_url(url).database), population.releases)
                      if dialect == "sqlite" else PostgresLoader(url, population.releases))
    ids, written, made_s = Ids(), 0, 0.0
    began = time.perf_counter()
    for first in range(1, count + 1, BATCH):
        started = time.perf_counter()
        rows = population.rows(first, min(first + BATCH - 1, count), ids)
        made_s += time.perf_counter() - started
        written += loader.write(rows)
        seconds = time.perf_counter() - began
        print(f"  {min(first + BATCH - 1, count):>9,} subscribers, {written:>11,} rows, "
              f"{written / seconds:>9,.0f} rows/s", file=sys.stderr, end="\r")
    loaded_s = time.perf_counter() - began
    loader.close()
    db_engine = make_engine(url)
    with db_engine.begin() as conn:
        tallies.replace_totals(conn)
        tally_sql.install(conn)
        daily_sql.install(conn)
    db_engine.dispose()
    total_s = time.perf_counter() - began
    print(file=sys.stderr)
    return {"rows": written + 2, "seconds": round(total_s, 1), "rows_per_s": round(written / loaded_s),
            "python_s": round(made_s, 1), "generated_at": now}


def table_counts(url: str) -> dict[str, int]:
    """Rows per table."""
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            return {table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                    for table in ORDER}
    finally:
        db_engine.dispose()


def database_bytes(kind: str, target: str) -> int:
    """The database's size on disk."""
    if kind == "sqlite":
        files = [Path(target + suffix) for suffix in ("", "-wal")]
        return sum(file.stat().st_size for file in files if file.exists())
    db_engine = make_engine(target)
    try:
        with db_engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        db_engine.dispose()


def create_postgres(name: str | None = None) -> str:
    """A new empty database on 127.0.0.1:5432: its URL."""
    return create_database("funnel_scale_", name)


def postgres_folder(url: str) -> str:
    """Where the server keeps its files, when it is on this machine and says so; else /."""
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            folder = str(conn.execute(sa.text("SHOW data_directory")).scalar_one())
    except sa.exc.DBAPIError:
        folder = "/"
    finally:
        db_engine.dispose()
    return folder if Path(folder).exists() else "/"


def drop_postgres(url: str) -> None:
    """Drop the database `url` names (only a funnel_scale_ one)."""
    name = sa.engine.make_url(url).database or ""
    if not name.startswith("funnel_scale_"):
        raise SystemExit(f"refusing to drop {name!r}: only databases named funnel_scale_* are this tool's")
    drop_database(url)


# --- time ----------------------------------------------------------------------------------


@contextmanager
def project_folder() -> Iterator[Path]:
    """A throwaway project with the shipped funnels (a copy: the daemon writes outbox/ into it)."""
    folder = Path(tempfile.mkdtemp(prefix="funnel-scale-"))
    try:
        shutil.copytree(ROOT / "sequences", folder / "sequences")
        shutil.copytree(ROOT / "templates", folder / "templates")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _env(url: str, port: int = 0) -> dict[str, str]:
    return {**os.environ, "FUNNEL_DATABASE_URL": url, "FUNNEL_SECRET_KEY": SECRET, "FUNNEL_API_KEY": PASSWORD,
            "FUNNEL_ADMIN_PASSWORD": PASSWORD, "FUNNEL_TRANSPORT": "outbox", "FUNNEL_PORT": str(port),
            "FUNNEL_LOG_LEVEL": "warning"}


def run_command(project: Path, url: str, *args: str) -> tuple[float, int, float]:
    """(seconds, bytes printed, peak resident MB) of one `funnel` command run as a process."""
    command = [sys.executable, "-m", "engine", "--project", str(project), *args]
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=_env(url), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    printed = 0
    while chunk := process.stdout.read(1 << 16):
        printed += len(chunk)
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"funnel {' '.join(args)} exited {process.returncode}: {errors.decode()[-2000:]}")
    return seconds, printed, usage.ru_maxrss / 1024


def in_process(project: Path, url: str, runs: int, *args: str) -> list[float]:
    """Seconds of each of `runs` runs of one `funnel` command inside one process (bench/scale_cli.py)."""
    command = [sys.executable, "-m", "bench.scale_cli", str(runs), str(project), *args]
    done = subprocess.run(command, cwd=ROOT, env=_env(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"funnel {' '.join(args)} failed in process: {done.stderr[-2000:]}")
    return list(json.loads(done.stdout.splitlines()[-1])["seconds"])


def median_of(runs: int, once: Callable[[], float]) -> float:
    """The median of `runs` timings."""
    return statistics.median(once() for _ in range(runs))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def daemon(project: Path, url: str) -> Iterator[tuple[str, int, float]]:
    """`funnel run` on a free loopback port: (base URL, pid, seconds until /healthz first said 200)."""
    port = _free_port()
    log_path = project / "daemon.log"
    with log_path.open("wb") as log:
        command = [sys.executable, "-m", "engine", "--project", str(project), "run", "--port", str(port)]
        process = subprocess.Popen(command, cwd=ROOT, env=_env(url, port), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    began = time.perf_counter()
    try:
        wait_until_healthy(process, base, log_path, 300)
        yield base, process.pid, time.perf_counter() - began
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pick_subscriber(url: str) -> tuple[int, str]:
    """A subscriber with a long history (a customer, else whoever got furthest): (id, address)."""
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            for stage in ("customer", "ended", "sales_done", "sales", "nurture", "confirming"):
                found = conn.execute(
                    sa.select(SUBSCRIBER.c.id, SUBSCRIBER.c.email)
                    .join(ENROLLMENT, ENROLLMENT.c.subscriber_id == SUBSCRIBER.c.id)
                    .where(ENROLLMENT.c.stage == stage).order_by(SUBSCRIBER.c.id).limit(1)
                ).first()
                if found:
                    return int(found[0]), str(found[1])
    finally:
        db_engine.dispose()
    raise SystemExit("the database holds no subscribers: run `python -m bench.scale generate` first")


def time_reads(url: str, runs: int = RUNS, pages_only: bool = False) -> dict[str, float]:
    """Every figure, in seconds (reads) and MB (memory); `pages_only`: the daemon's pages alone."""
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%d")
    subscriber_id, address = pick_subscriber(url)
    figures: dict[str, float] = {}
    with project_folder() as project:
        if not pages_only:
            time_commands(project, url, address, since, runs, figures)
        with daemon(project, url) as (base, pid, ready_s):
            figures["daemon_healthz_first_s"] = ready_s
            time.sleep(5)  # its first tick and guardrail check are done: idle
            figures["daemon_idle_rss_mb"] = _rss_mb(pid)
            figures.update(time_pages(base, subscriber_id, since, runs))
            figures["daemon_rss_after_pages_mb"] = _rss_mb(pid)
        problems = [line for line in (project / "daemon.log").read_text(errors="replace").splitlines()
                    if '"level": "error"' in line or "Traceback" in line]
        figures["daemon_errors"] = len(problems)
    return figures


def time_commands(project: Path, url: str, address: str, since: str, runs: int,
                  figures: dict[str, float]) -> None:
    """The `funnel` commands, as processes and in one process, and the guardrail check."""
    figures["cli_start_s"] = median_of(runs, lambda: run_command(project, url, "--version")[0])
    commands = {
        "stats_funnel_json": ("stats", FUNNEL, "--json"),
        "stats_all": ("stats",),
        "stats_since": ("stats", "--since", since),
        "subscriber_show": ("subscribers", "show", address),
        "export": ("subscribers", "export"),
    }
    for name, args in commands.items():
        processes = [run_command(project, url, *args) for _ in range(runs)]
        figures[f"{name}_s"] = statistics.median(p[0] for p in processes)
        figures[f"{name}_in_process_s"] = statistics.median(in_process(project, url, runs, *args))
        if name == "export":
            figures["export_mb_out"] = processes[0][1] / 1e6
            figures["export_peak_rss_mb"] = max(p[2] for p in processes)
    plans = {FUNNEL: first_marathon(project)}
    db_engine = make_engine(url)

    def guard() -> float:
        began = time.perf_counter()
        paused = check_guardrails(db_engine, plans, datetime.now(UTC))
        assert not paused, f"the guardrail check paused {paused}: the generated rates crossed a guardrail"
        return time.perf_counter() - began

    figures["guardrail_check_s"] = median_of(runs, guard)
    db_engine.dispose()


def time_pages(base: str, subscriber_id: int, since: str, runs: int) -> dict[str, float]:
    """The dashboard pages and GET /api/stats over HTTP, logged in as an operator is."""
    year_ago = (datetime.now(UTC) - timedelta(days=364)).strftime("%Y-%m-%d")
    pages = {
        "api_stats_s": "/api/stats",
        "dashboard_overview_s": "/dashboard",
        "dashboard_overview_since_s": f"/dashboard?since={since}",
        "dashboard_funnel_s": f"/dashboard/funnels/{FUNNEL}",
        "dashboard_map_s": f"/dashboard/funnels/{FUNNEL}/map",
        "dashboard_guardrails_s": "/dashboard/guardrails",
        "dashboard_subscriber_s": f"/dashboard/subscribers/{subscriber_id}",
        "dashboard_search_s": "/dashboard/subscribers?q=runner12",
        # Charts over time (daily tallies): the last 30 days, one email's, a year by the week.
        "dashboard_charts_s": f"/dashboard/funnels/{FUNNEL}/charts",
        "dashboard_charts_step_s": f"/dashboard/funnels/{FUNNEL}/charts?step={CHART_STEP}",
        "dashboard_charts_year_s": f"/dashboard/funnels/{FUNNEL}/charts?from={year_ago}",
    }
    found: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=600) as http:
        form = http.get("/dashboard/login")
        token = _CSRF.search(form.text)
        assert token is not None, "no CSRF field on the login page"
        login = http.post("/dashboard/login", data={"csrf": token.group(1), "password": PASSWORD,
                                                    "next": "/dashboard"})
        assert login.status_code == 303, f"login answered {login.status_code}: {login.text[:300]}"
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        for name, path in pages.items():
            def get(path: str = path) -> float:
                began = time.perf_counter()
                response = http.get(path, headers=headers if path.startswith("/api/") else None)
                seconds = time.perf_counter() - began
                assert response.status_code == 200, f"GET {path} answered {response.status_code}"
                return seconds
            found[name] = median_of(runs, get)
    return found


# --- output --------------------------------------------------------------------------------

LABELS = {
    "stats_funnel_json_s": (f"funnel stats {FUNNEL} --json", 1.0),
    "stats_all_s": ("funnel stats", 1.0),
    "stats_since_s": ("funnel stats --since DATE", 1.0),
    "api_stats_s": ("GET /api/stats", 1.0),
    "dashboard_overview_s": ("/dashboard", 1.0),
    "dashboard_overview_since_s": ("/dashboard?since=DATE", 1.0),
    "dashboard_funnel_s": (f"/dashboard/funnels/{FUNNEL}", 1.0),
    "dashboard_map_s": (f"/dashboard/funnels/{FUNNEL}/map", 1.0),
    "dashboard_guardrails_s": ("/dashboard/guardrails", 1.0),
    "dashboard_subscriber_s": ("/dashboard/subscribers/ID", 1.0),
    "dashboard_search_s": ("/dashboard/subscribers?q=", 1.0),
    "dashboard_charts_s": (f"/dashboard/funnels/{FUNNEL}/charts", 1.0),
    "dashboard_charts_step_s": (f"/dashboard/funnels/{FUNNEL}/charts?step=", 1.0),
    "dashboard_charts_year_s": (f"/dashboard/funnels/{FUNNEL}/charts?from= (a year)", 1.0),
    "subscriber_show_s": ("funnel subscribers show ADDRESS", 0.1),
    "export_s": ("funnel subscribers export", None),
    "guardrail_check_s": ("guardrail check (one run, in process)", 1.0),
    "daemon_healthz_first_s": ("daemon start to first /healthz 200", None),
    "cli_start_s": ("funnel --version (process start-up)", None),
}


def print_table(figures: dict[str, float]) -> None:
    """One line per read: the median, and the aim from issue 14.

    A `funnel` command is timed twice: as a process (what the operator waits for, Python's
    start-up included) and inside one process (the command's own work).
    """
    print(f"{'read (median)':<44} {'seconds':>9} {'in process':>10}  aim")
    for key, (label, aim) in LABELS.items():
        if key in figures:
            inside = figures.get(key.removesuffix("_s") + "_in_process_s")
            print(f"{label:<44} {figures[key]:>9.3f} {f'{inside:.3f}' if inside is not None else '':>10}  "
                  f"{f'< {aim:g} s' if aim else ''}")
    if "export_mb_out" in figures:
        print(f"{'export: printed / peak resident':<44} {figures['export_mb_out']:>6.0f} MB / "
              f"{figures['export_peak_rss_mb']:.0f} MB (aim < 200 MB)")
    print(f"{'idle daemon resident':<44} {figures['daemon_idle_rss_mb']:>6.0f} MB (aim < 150 MB); "
          f"after the pages {figures['daemon_rss_after_pages_mb']:.0f} MB")
    print(f"{'daemon errors logged while timing':<44} {figures['daemon_errors']:>6.0f}")


def main() -> None:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="make a database of N subscribers")
    gen.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    gen.add_argument("--subscribers", type=int, default=100_000)
    gen.add_argument("--out", help="SQLite file to write (must not exist; default funnel-scale-N.db)")
    gen.add_argument("--url", help="an empty PostgreSQL database (default: a new funnel_scale_* one)")
    gen.add_argument("--seed", type=int, default=14)
    timing = sub.add_parser("time", help="time the operator's reads on a generated database")
    timing.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    timing.add_argument("--path", help="the SQLite file")
    timing.add_argument("--url", help="the PostgreSQL database's URL")
    timing.add_argument("--runs", type=int, default=RUNS)
    timing.add_argument("--pages-only", action="store_true",
                        help="time the daemon's pages alone, not the commands and the guardrail check")
    drop = sub.add_parser("drop", help="drop a funnel_scale_* PostgreSQL database")
    drop.add_argument("--url", required=True)
    args = parser.parse_args()
    if args.command == "drop":
        drop_postgres(args.url)
        print(f"dropped {sa.engine.make_url(args.url).database}")
    elif args.command == "generate":
        run_generate(args)
    else:
        run_time(args)


def run_generate(args: argparse.Namespace) -> None:
    """`generate`: check the disk, fill, count, print."""
    if args.database == "sqlite":
        target = str(Path(args.out or f"funnel-scale-{args.subscribers}.db").resolve())
        if Path(target).exists():
            raise SystemExit(f"{target} exists: give a new --out path, or delete it first")
        free = shutil.disk_usage(Path(target).parent).free
    else:
        target = args.url or create_postgres()
        free = shutil.disk_usage(postgres_folder(target)).free
    needed = args.subscribers * BYTES_PER_SUBSCRIBER[args.database]
    if needed > free * 0.9:
        fits = int(free * 0.9 / BYTES_PER_SUBSCRIBER[args.database])
        print(f"{args.subscribers:,} subscribers need about {needed / 1e9:.1f} GB and the disk has "
              f"{free / 1e9:.1f} GB free: making {fits:,}, the most that fit", file=sys.stderr)
        args.subscribers = fits
    url = f"sqlite:///{target}" if args.database == "sqlite" else target
    figures = generate(url, args.subscribers, args.seed)
    counts = table_counts(url)
    size = database_bytes(args.database, target)
    print(f"{args.subscribers:,} subscribers on {args.database} in {figures['seconds']:.0f} s "
          f"({figures['rows_per_s']:,} rows/s; {figures['python_s']:.0f} s making rows): {target}")
    print("  " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))
    print(f"  {size / 1e6:,.0f} MB on disk; nothing due until "
          f"{datetime.fromtimestamp(figures['generated_at'] + 6 * 3600, UTC):%Y-%m-%d %H:%M} UTC")
    print(json.dumps({"command": "generate", "database": args.database, "subscribers": args.subscribers,
                      "target": target, **figures, "tables": counts, "megabytes": round(size / 1e6)}))


def run_time(args: argparse.Namespace) -> None:
    """`time`: every read, a table, then the JSON line."""
    if args.database == "sqlite":
        if not args.path or not Path(args.path).exists():
            raise SystemExit("give --path FILE: a database made by "
                             "`python -m bench.scale generate --database sqlite`")
        url = f"sqlite:///{Path(args.path).resolve()}"
    else:
        if not args.url:
            raise SystemExit("give --url URL: the database "
                             "`python -m bench.scale generate --database postgresql` printed")
        url = args.url
    counts = table_counts(url)
    figures = time_reads(url, args.runs, args.pages_only)
    print(f"{counts['subscriber']:,} subscribers on {args.database} "
          f"({sum(counts.values()):,} rows), {os.cpu_count()} cores")
    print_table(figures)
    print(json.dumps({"command": "time", "database": args.database, "subscribers": counts["subscriber"],
                      "runs": args.runs, **{k: round(v, 4) for k, v in figures.items()}}))


if __name__ == "__main__":
    main()

