"""A broadcast going out from a million, next to the sequence emails of `bench.send`, in one sitting.

The list's copy gets a broadcast of its own (an education email, at one instant, `window:
ignore`), to about N people in nurture: those who signed up last, down to the N-th. The
daemon is built as `funnel run` builds it (engine/daemon/wiring.py, bench.send's settings:
SMTP to smtp-sink on loopback, no rate limit) with a frozen clock a minute after the list's
latest signup, when nothing of the sequences is due (bench.scale leaves six idle hours), so
everything its ticks send is the broadcast. The broadcast is scheduled as `funnel broadcasts
schedule` does, its audience taken as the ticks take it (timed apart: `_broadcast_rate`), then
the ticks decide each recipient with step() over their whole history, and send. The sending
rate runs from the first tick to the last tick that sent anything, the whole rate from the
start of the taking; smtp-sink must count exactly the deliveries marked sent.

Two baselines send to the same sink in the same sitting:
- bench.send's engine run (`fill`, `engine_rate`: N subscribers due for their first nurture
  email, in a new database of the same kind), before and after the broadcast: the send
  path's rate for people with no history yet;
- after the broadcast, the same recipients' next sequence email, a week later on the same
  list (everyone else's next moment pushed past it, in the copy): the send path's rate for
  these people, who have a history that step() reads, as the broadcast's deciding does.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.postgres import create_database, drop_database
from bench.scale_people import FUNNEL
from bench.send import engine_rate, fill
from bench.send_process import bench_settings
from bench.smtp_sink import read_counters, running_sink
from bench.workspace import ROOT, workspace
from engine.daemon.wiring import Daemon, build_daemon
from engine.scheduler.broadcasts import take_audiences
from engine.scheduler.clock import FrozenClock
from engine.store import broadcasts as calendar
from engine.store.db import make_engine
from engine.store.tables import BROADCAST_RECIPIENT, DELIVERY, ENROLLMENT, SUBSCRIBER

BROADCAST = "bench-send"
STAGE = "nurture"
WINDOW = "send_window: weekdays 07:00-10:00"


def _broadcast_file(at: datetime, after: datetime) -> str:
    return (
        f"broadcast: {BROADCAST}\nname: Bench send\nfunnel: {FUNNEL}\nemail:\n"
        '  subject: "A tip for your long run{% if subscriber.first_name %}, '
        '{{ subscriber.first_name }}{% endif %}"\n'
        "  template: broadcasts/winter-sale.html\n  role: education\n"
        f"audience:\n  stages: [{STAGE}]\n  signed_up_after: {after.isoformat()}\n"
        f"send:\n  at: {at.strftime('%Y-%m-%dT%H:%M:%SZ')}\n  window: ignore\n"
    )


@contextmanager
def _project(at: datetime, after: datetime) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="funnel-bench-broadcast-"))
    try:
        for part in ("sequences", "templates"):
            shutil.copytree(ROOT / part, folder / part)
        # The send window open all day, every day: the list's present is whenever it was
        # generated (the broadcast itself says `window: ignore`; docs/benchmarks.md).
        funnel = folder / "sequences" / f"{FUNNEL}.yaml"
        text = funnel.read_text()
        if WINDOW not in text:
            raise SystemExit(f"{funnel.name} no longer says '{WINDOW}': update bench/broadcast_send.py")
        funnel.write_text(text.replace(WINDOW, "send_window: daily 00:00-23:59"))
        (folder / "broadcasts").mkdir()
        (folder / "broadcasts" / f"{BROADCAST}.yaml").write_text(_broadcast_file(at, after))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cutoff(url: str, count: int) -> datetime:
    """The signup time from which about `count` active subscribers in nurture signed up."""
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            found: datetime = conn.execute(
                sa.select(ENROLLMENT.c.created_at)
                .join(SUBSCRIBER, SUBSCRIBER.c.id == ENROLLMENT.c.subscriber_id)
                .where(ENROLLMENT.c.funnel == FUNNEL, ENROLLMENT.c.stage == STAGE,
                       SUBSCRIBER.c.status == "active")
                .order_by(ENROLLMENT.c.created_at.desc())
                .limit(1)
                .offset(count - 1)
            ).scalar_one()
    finally:
        db_engine.dispose()
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _due(url: str, at: datetime) -> int:
    """Enrollments and deliveries due at `at`: anything the ticks would send besides the broadcast."""
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            enrollments = conn.execute(
                sa.select(sa.func.count()).select_from(ENROLLMENT).where(ENROLLMENT.c.next_run_at <= at)
            ).scalar_one()
            deliveries = conn.execute(
                sa.select(sa.func.count()).select_from(DELIVERY).where(
                    DELIVERY.c.status.in_(("queued", "deferred")), DELIVERY.c.next_attempt_at <= at)
            ).scalar_one()
    finally:
        db_engine.dispose()
    return int(enrollments) + int(deliveries)


def _ticked(daemon: Daemon, done: Callable[[], bool]) -> tuple[float, float, float, int, float]:
    """Tick until `done()` and a tick that decided and sent nothing; (began, when done() first
    held, the last tick that sent, ticks, CPU seconds of this process)."""

    async def run() -> tuple[float, float, float, int]:
        began = time.perf_counter()
        done_at = last_sent = began
        ticks = 0
        while True:
            report = await daemon.ticker.tick()
            ticks += 1
            if report.attempted:
                last_sent = time.perf_counter()
            finished = done()
            if finished and done_at == began:
                done_at = time.perf_counter()
            if finished and report.decided == 0 and report.attempted == 0:
                break
        await daemon.transport.close()
        return began, done_at, last_sent, ticks

    cpu = time.process_time()
    began, done_at, last_sent, ticks = asyncio.run(run())
    return began, done_at, last_sent, ticks, time.process_time() - cpu


def _broadcast_rate(url: str, project: Path, at: datetime, port: int, connections: int) -> dict[str, Any]:
    """Schedule the bench broadcast, take its audience, and tick until it is all out: its figures.

    The audience is taken first, as the daemon's ticks take it (`take_audiences`, batches of
    5,000) but without the 0.5 s budget of a tick, so that the two parts are timed apart: the
    taking (a one-off, at the broadcast's first moment) and the sending (the ticks deciding
    each recipient with step() and sending). In a running daemon they overlap; the total of
    the two is the broadcast's time from its first moment to its last email.
    """
    daemon = build_daemon(bench_settings(url, port, connections), project, clock=FrozenClock(at),
                          db_engine=make_engine(url))
    plan = daemon.live.current.plans[FUNNEL].broadcast(BROADCAST)
    assert plan is not None, "the bench broadcast did not load"
    with daemon.db_engine.begin() as conn:
        # Scheduled a minute before its moment, as a marketer would: the calendar refuses one
        # whose time has come (calendar.TooLate).
        calendar.schedule(conn, plan, daemon.live.current.release.id, at - timedelta(minutes=1), "bench")

    def taken() -> bool:
        with daemon.db_engine.connect() as conn:
            found = calendar.row(conn, BROADCAST)
        return found is not None and found["state"] == calendar.SENDING

    taking_cpu, taking = time.process_time(), time.perf_counter()
    while not taken():
        take_audiences(daemon.db_engine, daemon.live.current, at, budget=float("inf"))
    taking, taking_cpu = time.perf_counter() - taking, time.process_time() - taking_cpu
    began, _, last_sent, ticks, cpu = _ticked(daemon, taken)
    with daemon.db_engine.connect() as conn:
        progress = calendar.progress(conn, BROADCAST)
        sent = conn.execute(
            sa.select(sa.func.count()).select_from(DELIVERY).where(
                DELIVERY.c.step == BROADCAST, DELIVERY.c.status == "sent")
        ).scalar_one()
    daemon.db_executor.shutdown()
    daemon.db_engine.dispose()
    sending = last_sent - began
    seconds = taking + sending
    return {"recipients": progress.total, "by_status": progress.by_status,
            "skipped_because": progress.skipped_because, "sent": int(sent), "seconds": round(seconds, 2),
            "taking_s": round(taking, 2), "taking_cpu_s": round(taking_cpu, 2),
            "sending_s": round(sending, 2), "ticks": ticks,
            "emails_per_s": round(int(sent) / seconds) if seconds > 0 else 0,
            "sending_emails_per_s": round(int(sent) / sending) if sending > 0 else 0,
            "cpu_ms_per_email": round((cpu + taking_cpu) / max(int(sent), 1) * 1000, 3),
            "sending_cpu_ms_per_email": round(cpu / max(int(sent), 1) * 1000, 3)}


def _list_sequence_rate(url: str, project: Path, at: datetime, port: int, connections: int) -> dict[str, Any]:
    """The broadcast's recipients' next sequence email, a week after it, on the same list: its figures.

    In the copy, every other enrollment's next moment (and any email waiting for a retry) is
    pushed a month past that week, so that the ticks send these people's emails and nobody
    else's; the send window is open all day (`_project`), and each gets one email (the next
    is spacing later).
    """
    later = at + timedelta(days=7)
    db_engine = make_engine(url)
    try:
        with db_engine.begin() as conn:
            ids = sa.select(BROADCAST_RECIPIENT.c.enrollment_id).where(
                BROADCAST_RECIPIENT.c.broadcast == BROADCAST)
            conn.execute(sa.update(ENROLLMENT)
                         .where(ENROLLMENT.c.next_run_at <= later, ENROLLMENT.c.id.not_in(ids))
                         .values(next_run_at=later + timedelta(days=30)))
            conn.execute(sa.update(DELIVERY)
                         .where(DELIVERY.c.status.in_(("queued", "deferred")),
                                DELIVERY.c.next_attempt_at <= later)
                         .values(next_attempt_at=later + timedelta(days=30)))
            people = conn.execute(sa.update(ENROLLMENT).where(ENROLLMENT.c.id.in_(ids))
                                  .values(next_run_at=later)).rowcount
            first = conn.execute(sa.select(sa.func.coalesce(sa.func.max(DELIVERY.c.id), 0))).scalar_one()
    finally:
        db_engine.dispose()
    if (due := _due(url, later)) != people:
        raise SystemExit(f"{due - people:,} other enrollments or deliveries are due a week after the "
                         "broadcast")
    daemon = build_daemon(bench_settings(url, port, connections), project, clock=FrozenClock(later),
                          db_engine=make_engine(url))
    began, _, last_sent, ticks, cpu = _ticked(daemon, lambda: True)
    with daemon.db_engine.connect() as conn:
        sent = int(conn.execute(
            sa.select(sa.func.count()).select_from(DELIVERY)
            .where(DELIVERY.c.id > first, DELIVERY.c.status == "sent")
        ).scalar_one())
    daemon.db_executor.shutdown()
    daemon.db_engine.dispose()
    seconds = last_sent - began
    return {"people": people, "sent": sent, "seconds": round(seconds, 2), "ticks": ticks,
            "emails_per_s": round(sent / seconds) if seconds > 0 else 0,
            "cpu_ms_per_email": round(cpu / max(sent, 1) * 1000, 3)}


def _sequence_rate(postgres: bool, port: int, connections: int, count: int) -> tuple[float, float]:
    """bench.send's engine run: `count` first nurture emails from a new database of the same kind;
    (emails a second, ms of CPU an email)."""
    created = create_database("funnel_bench_send_") if postgres else None
    try:
        with workspace(created) as (project, url):
            fill(url, count)
            rate, cpu = engine_rate(url, project, port, connections, count, 1000)
            return rate, cpu / count * 1000
    finally:
        if created:
            drop_database(created)


def send_figures(
    url: str, now: datetime, count: int, sequence_emails: int, connections: int
) -> dict[str, Any]:
    """The broadcast sent to about `count` of the list at `url`, between two bench.send runs."""
    at = now + timedelta(minutes=1)
    if (due := _due(url, at)) > 0:
        raise SystemExit(f"{due:,} enrollments or deliveries of the list are due at {at:%Y-%m-%d %H:%M} UTC: "
                         "the ticks would send them beside the broadcast; generate the list anew")
    after = _cutoff(url, count)
    postgres = url.startswith("postgresql")
    with _project(at, after) as project, tempfile.TemporaryDirectory() as scratch:
        counters = Path(scratch) / "sink-counters"
        with running_sink(counters_file=counters) as port:
            runs = [_sequence_rate(postgres, port, connections, sequence_emails)]
            before = read_counters(counters).messages
            figures = _broadcast_rate(url, project, at, port, connections)
            arrived = read_counters(counters).messages - before
            runs.append(_sequence_rate(postgres, port, connections, sequence_emails))
            before = read_counters(counters).messages
            same_list = _list_sequence_rate(url, project, at, port, connections)
            if (got := read_counters(counters).messages - before) != same_list["sent"]:
                raise RuntimeError(f"smtp-sink received {got:,} messages for {same_list['sent']:,} "
                                   "sent deliveries")
    rates = [rate for rate, _cpu in runs]
    if arrived != figures["sent"]:
        raise RuntimeError(f"smtp-sink received {arrived:,} messages for {figures['sent']:,} sent deliveries")
    sequence = sorted(rates)[len(rates) // 2] if len(rates) % 2 else sum(rates) / len(rates)
    return {**figures, "audience": f"stages [{STAGE}], signed up from {after:%Y-%m-%d %H:%M} UTC",
            "connections": connections, "sequence_emails": sequence_emails,
            "sequence_emails_per_s": [round(r) for r in rates],
            "sequence_cpu_ms_per_email": [round(cpu, 3) for _rate, cpu in runs],
            "ratio": round(figures["emails_per_s"] / sequence, 3) if sequence else 0.0,
            "same_list": same_list,
            "ratio_same_list": round(figures["emails_per_s"] / same_list["emails_per_s"], 3)
            if same_list["emails_per_s"] else 0.0,
            "ratio_same_list_sending": round(figures["sending_emails_per_s"] / same_list["emails_per_s"], 3)
            if same_list["emails_per_s"] else 0.0}
