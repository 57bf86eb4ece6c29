"""A broadcast to a million: counting its audience, taking it in batches, and sending it.

    python -m bench.broadcast --sqlite FILE [--runs 3] [--send 20000]
    python -m bench.broadcast --database-url URL [--runs 3] [--send 20000]

FILE or URL is a list made by `python -m bench.scale generate` (a million subscribers of
the shipped first-marathon funnel). It is never changed: the benchmark works on a copy
(SQLite: the file copied beside it; PostgreSQL: `CREATE DATABASE ... TEMPLATE` it), brought
to the newest migration and removed at the end. In that copy it times:

1. `engine.store.audience.count()` (the one GROUP BY statement `funnel broadcasts show`
   runs) for the shipped winter-sale broadcast's audience and for four others, wall and
   CPU, median of --runs; this process's CPU, and on PostgreSQL the server backend's
   (from /proc, when the server runs on this machine; parallel workers not counted).
   With --explain (and for any count over 5 s) the database's plan of each statement.
2. Taking the winter sale's whole audience as the daemon does (`take_batch`, batches of
   5,000, each recipient's row and the wake-up of their enrollment in one write): the
   total and each batch's p50, p99 and longest (on SQLite a batch holds the write lock).
   Then cancelling it (every pending recipient in one UPDATE).
3. The broadcast going out (bench/broadcast_send.py): a broadcast to about --send
   subscribers, sent by the daemon's real ticks over SMTP to smtp-sink, against
   `bench.send`'s sequence emails in the same sitting.

Each line is for a person to read; the last one is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.broadcast_send import send_figures
from bench.machine import others_cores, sample
from bench.postgres import ADMIN_URL, drop_database
from bench.query_plans import plan_of, statements_of
from bench.scale_people import FUNNEL
from bench.workspace import ROOT
from engine.project.folder import Project
from engine.sequences.plan import Audience, BroadcastPlan
from engine.store import audience as audience_sql
from engine.store import broadcasts as calendar
from engine.store.db import DbEngine, make_engine
from engine.store.migrate import upgrade
from engine.store.tables import ENROLLMENT

BROADCAST = "winter-sale"  # the shipped one: broadcasts/2026-12-10-winter-sale.yaml
BATCH = 5_000  # engine/scheduler/broadcasts.py BATCH
AIM_SECONDS = 5.0
COPY_PREFIX = "funnel_broadcast_copy_"  # the PostgreSQL copies


def shipped_broadcast() -> BroadcastPlan:
    """The shipped winter-sale broadcast, compiled from the repository's files."""
    for loaded in Project(ROOT).check().funnels:
        if loaded.plan.funnel == FUNNEL:
            found = loaded.plan.broadcast(BROADCAST)
            if found is not None:
                return found
    raise SystemExit(f"no broadcast '{BROADCAST}' for {FUNNEL} under {ROOT}/broadcasts")


def audiences(shipped: BroadcastPlan) -> dict[str, Audience]:
    """The audiences counted: the shipped one and four that touch each kind of condition."""
    return {
        "winter-sale (segments, stages)": shipped.audience,
        "everyone": Audience(),
        "answered experience=new, engaged within 30d": Audience(
            answers=(("experience", frozenset({"new"})),), engaged_within=timedelta(days=30)
        ),
        "bought anything": Audience(bought=frozenset()),
        "never bought, nurture or sales_done": Audience(
            not_bought=frozenset(), stages=frozenset({"nurture", "sales_done"})
        ),
    }


# --- the copy ------------------------------------------------------------------------------


@contextmanager
def copy_of(sqlite: str | None, url: str | None) -> Iterator[tuple[str, float]]:
    """A copy of the given list at the newest migration: (its URL, seconds the copy took); removed after."""
    began = time.perf_counter()
    if sqlite:
        source = Path(sqlite).resolve()
        if not source.exists():
            raise SystemExit(f"{source} does not exist: make it with `python -m bench.scale generate "
                             "--database sqlite --subscribers 1000000 --out FILE`")
        target = source.with_name(f"{source.stem}-broadcast-{uuid.uuid4().hex[:6]}.db")
        shutil.copyfile(source, target)
        copied = f"sqlite:///{target}"
    else:
        assert url is not None
        template = sa.engine.make_url(url).database
        name = f"{COPY_PREFIX}{uuid.uuid4().hex[:8]}"
        admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        finally:
            admin.dispose()
        copied = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        db_engine = make_engine(copied)
        upgrade(db_engine)
        for added in catch_up(db_engine):
            print(f"  the copy lacked {added}: added (a list generated before the column joined its "
                  "migration)", flush=True)
        db_engine.dispose()
        yield copied, time.perf_counter() - began
    finally:
        if sqlite:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        else:
            drop_database(copied)


def catch_up(db_engine: DbEngine) -> list[str]:
    """Add the columns the engine's tables declare and the database lacks: 'table.column' each.

    Migration 0006 gained broadcast.winner, .decision (ebdc326) and .first_due_at in place, so a
    list generated at 0006 before then lacks them while saying it is at the newest migration.
    """
    inspector = sa.inspect(db_engine)
    added = []
    with db_engine.begin() as conn:
        for table in ENROLLMENT.metadata.sorted_tables:
            have = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
                    added.append(f"{table.name}.{column.name}")
    return added


def data_now(db_engine: DbEngine) -> datetime:
    """The list's own present: its latest signup (bench.scale generates up to the moment it ran)."""
    with db_engine.connect() as conn:
        latest: datetime = conn.execute(sa.select(sa.func.max(ENROLLMENT.c.created_at))).scalar_one()
    return latest if latest.tzinfo else latest.replace(tzinfo=UTC)


# --- 1. counting ---------------------------------------------------------------------------


def _backend_cpu(conn: sa.Connection) -> Callable[[], float]:
    """The PostgreSQL backend's CPU seconds so far, read from /proc; 0 when it cannot be read."""
    if conn.dialect.name != "postgresql":
        return lambda: 0.0
    pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    stat = Path(f"/proc/{pid}/stat")
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    return read


def time_counts(db_engine: DbEngine, shipped: BroadcastPlan, now: datetime, runs: int) -> dict[str, Any]:
    """Per audience: wall, this process's CPU, the server backend's CPU (median of `runs`), who it holds."""
    found: dict[str, Any] = {}
    for name, audience in audiences(shipped).items():
        walls, cpus, server = [], [], []
        with db_engine.connect() as conn:
            backend = _backend_cpu(conn)
            for _ in range(runs):
                cpu, served, began = time.process_time(), backend(), time.perf_counter()
                counts = audience_sql.count(conn, audience, FUNNEL, now, shipped.first_due())
                walls.append(time.perf_counter() - began)
                cpus.append(time.process_time() - cpu)
                server.append(backend() - served)
                conn.rollback()
        found[name] = {
            "wall_s": statistics.median(walls),
            "first_wall_s": walls[0],
            "cpu_s": statistics.median(cpus),
            "server_cpu_s": statistics.median(server),
            "matching": counts.matching,
            "taken": counts.taken,
            "left_out": sum(counts.left_out.values()),
        }
    return found


# --- 2. taking -----------------------------------------------------------------------------


def time_taking(db_engine: DbEngine, broadcast: BroadcastPlan) -> dict[str, Any]:
    """Schedule the broadcast and take its whole audience batch by batch, as take_audiences does."""
    now = broadcast.first_due()
    with db_engine.begin() as conn:
        calendar.schedule(conn, broadcast, None, now - timedelta(days=1), "bench")
    due_in = lru_cache(maxsize=None)(broadcast.due_at)

    def due_for(_subscriber: int, timezone: str) -> datetime:  # no experiment: as the daemon does
        return due_in(timezone)

    seconds: list[float] = []
    taken, cpu = 0, time.process_time()
    while True:
        began = time.perf_counter()
        got = calendar.take_batch(db_engine, broadcast, now, BATCH, due_for)
        if got is None:
            break
        seconds.append(time.perf_counter() - began)
        taken += got
        if got < BATCH:
            break
    cpu = time.process_time() - cpu
    began = time.perf_counter()
    with db_engine.begin() as conn:
        cancelled = calendar.cancel(conn, broadcast.id, now, "bench")
    cancel_s = time.perf_counter() - began
    ordered = sorted(seconds)
    return {
        "recipients": taken,
        "batches": len(seconds),
        "total_s": sum(seconds),
        "cpu_s": cpu,
        "batch_p50_s": statistics.median(seconds),
        "batch_p99_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "batch_max_s": ordered[-1],
        "batch_first_s": seconds[0],
        "cancel_s": cancel_s,
        "cancelled": cancelled.recipients,
    }


# --- plans -------------------------------------------------------------------------------


def print_plans(db_engine: DbEngine, shipped: BroadcastPlan, now: datetime, names: list[str]) -> None:
    """The plan of count() for the audiences `names`, and of one batch's read of the shipped one."""
    chosen = audiences(shipped)
    for name in names:
        audience = chosen[name]
        with db_engine.connect() as conn:
            caught = statements_of(
                db_engine, lambda: audience_sql.count(conn, audience, FUNNEL, now, shipped.first_due()))  # noqa: B023
        print(f"\n  plan of count(), {name}:")
        for line in plan_of(db_engine, *caught[-1]):
            print(f"    {line}")
    with db_engine.connect() as conn:
        caught = statements_of(db_engine, lambda: audience_sql.recipients_after(
            conn, shipped.audience, FUNNEL, now, shipped.first_due(), 0, BATCH))
    print("\n  plan of a batch's read (recipients_after), the winter sale:")
    for line in plan_of(db_engine, *caught[-1]):
        print(f"    {line}")


# --- output --------------------------------------------------------------------------------


def print_counts(counts: dict[str, Any], database: str) -> None:
    """The counting table."""
    print(f"\n1. audience.count(), median of the runs ({database}; aim < {AIM_SECONDS:.0f} s)")
    print(f"  {'audience':<44} {'wall s':>7} {'CPU s':>6} {'server':>7} {'matching':>10} {'taken':>10}")
    for name, each in counts.items():
        mark = "" if each["wall_s"] < AIM_SECONDS else "  over the aim"
        print(f"  {name:<44} {each['wall_s']:>7.2f} {each['cpu_s']:>6.2f} {each['server_cpu_s']:>7.2f} "
              f"{each['matching']:>10,} {each['taken']:>10,}{mark}")


def print_taking(taking: dict[str, Any]) -> None:
    """The taking lines."""
    print(f"\n2. taking the winter sale's audience: {taking['recipients']:,} recipients in "
          f"{taking['batches']} batches of {BATCH:,}")
    print(f"  total {taking['total_s']:.1f} s ({taking['cpu_s']:.1f} s CPU here); a batch: "
          f"p50 {taking['batch_p50_s'] * 1000:.0f} ms, p99 {taking['batch_p99_s'] * 1000:.0f} ms, "
          f"longest {taking['batch_max_s'] * 1000:.0f} ms, first {taking['batch_first_s'] * 1000:.0f} ms")
    ticks = taking["total_s"] / 0.5
    print(f"  in the daemon (0.5 s of each 1 s tick): about {ticks:.0f} ticks, {ticks:.0f} s")
    print(f"  cancelling it: {taking['cancelled']:,} pending recipients in {taking['cancel_s']:.2f} s")


def print_sending(sending: dict[str, Any]) -> None:
    """The sending lines."""
    print(f"\n3. sending: a broadcast to {sending['recipients']:,} of the list "
          f"({sending['audience']}), the daemon's ticks, {sending['connections']} SMTP connections")
    print(f"  broadcast: {sending['recipients']:,} recipients taken in {sending['taking_s']:.1f} s "
          f"({sending['taking_cpu_s']:.1f} s CPU), then {sending['sent']:,} sent in "
          f"{sending['sending_s']:.1f} s "
          f"({sending['ticks']} ticks): {sending['sending_emails_per_s']:,.0f} emails/s, "
          f"{sending['sending_cpu_ms_per_email']:.2f} ms CPU an email; taking and sending together "
          f"{sending['emails_per_s']:,.0f} emails/s, {sending['cpu_ms_per_email']:.2f} ms CPU an email")
    runs = zip(sending["sequence_emails_per_s"], sending["sequence_cpu_ms_per_email"], strict=True)
    for i, (rate, cpu) in enumerate(runs, 1):
        print(f"  bench.send sequence emails, run {i}: {rate:,.0f} emails/s, {cpu:.2f} ms CPU an email")
    same = sending["same_list"]
    print(f"  the same {same['people']:,} people's next sequence email, a week later on the same list: "
          f"{same['sent']:,} sent, {same['emails_per_s']:,.0f} emails/s, "
          f"{same['cpu_ms_per_email']:.2f} ms CPU an email")
    print(f"  broadcast / sequence rate: {sending['ratio']:.2f} (bench.send's new people), "
          f"{sending['ratio_same_list']:.2f} (the same people's sequence emails); its sending alone / "
          f"the same people's: {sending['ratio_same_list_sending']:.2f}")


def main() -> None:
    """Parse, copy, time the three parts, print."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--sqlite", help="a SQLite file made by bench.scale generate")
    given.add_argument("--database-url", help="a PostgreSQL database made by bench.scale generate")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--send", type=int, default=20_000, help="recipients of the broadcast sent (0: skip)")
    parser.add_argument("--sequence-emails", type=int, default=5_000, help="bench.send's emails per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--explain", action="store_true",
                        help="print the plan of every count (a count over the aim's is printed anyway)")
    parser.add_argument("--parts", type=lambda text: set(text.split(",")), default={"count", "take", "send"},
                        help="which parts to run, comma-separated: count,take,send (all)")
    args = parser.parse_args()
    shipped = shipped_broadcast()
    database = "sqlite" if args.sqlite else "postgresql"
    start = sample()
    with copy_of(args.sqlite, args.database_url) as (url, copy_s):
        db_engine = make_engine(url)
        now = data_now(db_engine)
        with db_engine.connect() as conn:
            enrollments = conn.execute(sa.select(sa.func.count()).select_from(ENROLLMENT)).scalar_one()
        print(f"{enrollments:,} enrollments on {database}, copied in {copy_s:.0f} s; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        counts: dict[str, Any] = {}
        if "count" in args.parts:
            counts = time_counts(db_engine, shipped, now, args.runs)
            print_counts(counts, database)
            slow = [name for name, each in counts.items() if each["wall_s"] >= AIM_SECONDS]
            if args.explain or slow:
                print_plans(db_engine, shipped, now, list(counts) if args.explain else slow)
        taking: dict[str, Any] = {}
        if "take" in args.parts:
            taking = time_taking(db_engine, shipped)
            print_taking(taking)
        db_engine.dispose()
        sending: dict[str, Any] = {}
        if args.send and "send" in args.parts:
            sending = send_figures(url, now, args.send, args.sequence_emails, args.connections)
            print_sending(sending)
    busy = others_cores(start, sample())
    print(f"\nother processes kept {busy:.1f} cores busy on average; load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({
        "command": "broadcast", "database": database, "enrollments": enrollments, "runs": args.runs,
        "count": {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in each.items()}
                  for name, each in counts.items()},
        "take": {k: round(v, 4) if isinstance(v, float) else v for k, v in taking.items()},
        "send": sending, "others_cores": round(busy, 2),
    }))


if __name__ == "__main__":
    main()
