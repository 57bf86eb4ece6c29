"""CPU per email of each part of bench.send's path, each in a loop of its own: the micro loop.

    python -m bench.send_cpu [--subscribers 3000] [--passes 5] [--connections 64]
                             [--database sqlite|postgresql]

bench.send times the whole path by the wall clock, which other processes on a shared
2-core machine move by 30%. This one fills the same database as bench.send (N subscribers
of first-marathon due for their first nurture email) and times each part by the CPU the
process used (`time.process_time`, every thread), one after another, without the event
loop's waits between them:

- deciding: the tick's `decide_due` rounds, claim, `step()` and queueing the deliveries;
- claiming: the dispatcher's claim of the queued deliveries (and the stop list's look);
- preparing: the sender's `_prepare` of each claimed delivery (context, links, Jinja, CSS,
  text part, tracking, the message's bytes);
- smtp: those messages sent through the engine's SmtpTransport over C connections to
  smtp-sink, and the same bytes through bare aiosmtplib (`raw_send`, bench.raw_baseline),
  each including opening the connections;
- recording: `after_attempt` on a 250 for each, then the outcome commits in groups of C
  (as the group commit makes them when C connections send);
- whole: in another new database, the daemon's ticks as bench.send runs them (every part at
  once, the database thread beside the event loop): what the parts cost together.

Each pass starts from a new database; the figure of each part is the minimum over the
passes (the pass least disturbed by other processes). On PostgreSQL the server's own CPU
is not counted (it is another process); its wall time per email is printed beside it.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from bench.postgres import create_database, drop_database
from bench.raw_baseline import raw_send
from bench.send import NOW, fill
from bench.send_process import bench_settings, send_all
from bench.smtp_sink import running_sink
from bench.workspace import workspace
from engine.daemon import heap
from engine.daemon.wiring import build_daemon
from engine.mail.transport import Outcome, Outgoing, Result
from engine.scheduler.clock import FrozenClock
from engine.scheduler.decide import decide_due
from engine.scheduler.recording import after_attempt
from engine.store.db import make_engine

PARTS = ("deciding", "claiming", "preparing", "smtp", "raw_smtp", "recording", "whole")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """fn()'s result, the process CPU seconds and the wall seconds it took."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def whole(url: str, project: Any, port: int, count: int, connections: int) -> tuple[float, float]:
    """(CPU, wall) seconds per email of the daemon's ticks sending `count` emails, as bench.send runs them."""
    fill(url, count)
    threshold = gc.get_threshold()
    daemon = build_daemon(bench_settings(url, port, connections), project, clock=FrozenClock(NOW),
                          db_engine=make_engine(url))
    heap.settle()  # as funnel run does once its daemon is built
    try:
        _, cpu, wall = _timed(lambda: asyncio.run(send_all(daemon, count)))
    finally:
        gc.unfreeze()  # the next pass builds another daemon in this process
        gc.set_threshold(*threshold)
        daemon.db_executor.shutdown()
        daemon.web_executor.shutdown()
        daemon.db_engine.dispose()
    return cpu / count, wall / count


def one_pass(
    url: str, project: Any, port: int, count: int, connections: int
) -> dict[str, tuple[float, float]]:
    """(CPU, wall) seconds per email of each part but the whole, in one new database."""
    fill(url, count)
    daemon = build_daemon(bench_settings(url, port, connections), project, clock=FrozenClock(NOW),
                          db_engine=make_engine(url))
    ticker, dispatcher = daemon.ticker, daemon.dispatcher
    sender, recorder = dispatcher.sender, dispatcher.recorder
    parts: dict[str, tuple[float, float]] = {}
    try:
        def decide() -> int:
            queued = 0
            while True:
                round_ = decide_due(daemon.db_engine, daemon.live.current, NOW, 1000, ticker._domain)
                queued += round_.queued
                if round_.claimed < 1000:
                    return queued

        queued, cpu, wall = _timed(decide)
        if queued != count:
            raise RuntimeError(f"{queued} deliveries queued for {count} subscribers")
        parts["deciding"] = (cpu / count, wall / count)
        rows, cpu, wall = _timed(lambda: dispatcher._claim(NOW, count))
        parts["claiming"] = (cpu / count, wall / count)
        funnels = daemon.live.current
        prepared, cpu, wall = _timed(lambda: [sender._prepare(row, funnels, {}) for row in rows])
        if not all(isinstance(p, Outgoing) for p in prepared):
            raise RuntimeError("not every claimed delivery was composed")
        parts["preparing"] = (cpu / count, wall / count)

        async def engine_smtp() -> None:
            queue = list(reversed(prepared))

            async def worker() -> None:
                while queue:
                    result = await daemon.transport.send(queue.pop())
                    if result.outcome is not Outcome.SENT:
                        raise RuntimeError(f"smtp-sink did not take a message: {result}")

            await asyncio.gather(*(worker() for _ in range(connections)))
            await daemon.transport.close()

        _, cpu, wall = _timed(lambda: asyncio.run(engine_smtp()))
        parts["smtp"] = (cpu / count, wall / count)
        envelopes = [(p.mail_from, p.rcpt_to, p.data) for p in prepared]
        _, cpu, wall = _timed(lambda: asyncio.run(raw_send(port, envelopes, connections)))
        parts["raw_smtp"] = (cpu / count, wall / count)
        release = funnels.release.id
        sent = Result(Outcome.SENT, 250, "2.0.0 Ok: queued as 1234")

        def record() -> None:
            updates = [after_attempt(row, sent, NOW, sender.settings.retry, release) for row in rows]
            for start in range(0, len(updates), connections):
                recorder._write_sync(updates[start : start + connections])

        _, cpu, wall = _timed(record)
        parts["recording"] = (cpu / count, wall / count)
    finally:
        daemon.db_executor.shutdown()
        daemon.web_executor.shutdown()
        daemon.db_engine.dispose()
    return parts


def main() -> None:
    """Run the passes and print each part's minimum CPU per email."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    passes: list[dict[str, tuple[float, float]]] = []
    with running_sink() as port:
        for _ in range(args.passes):
            parts: dict[str, tuple[float, float]] = {}
            for run in (one_pass, whole):
                url = create_database("funnel_bench_") if args.database == "postgresql" else None
                try:
                    with workspace(url) as (project, db_url):
                        got = run(db_url, project, port, args.subscribers, args.connections)
                        parts.update(got if isinstance(got, dict) else {"whole": got})
                finally:
                    if url is not None:
                        drop_database(url)
            passes.append(parts)
    best = {part: min(p[part][0] for p in passes) * 1e6 for part in PARTS}
    wall = {part: min(p[part][1] for p in passes) * 1e6 for part in PARTS}
    print(f"{args.subscribers:,} emails, {args.connections} connections, {args.database}, "
          f"minimum of {args.passes} passes, microseconds per email")
    for part in PARTS:
        print(f"  {part:10} CPU {best[part]:7.1f}   wall {wall[part]:7.1f}")
    engine = sum(best[p] for p in PARTS if p not in ("raw_smtp", "whole"))
    print(f"  engine, the parts one by one: CPU {engine:.1f} µs per email; together (whole) "
          f"{best['whole']:.1f}; raw aiosmtplib's send {best['raw_smtp']:.1f}")
    print(json.dumps({"emails": args.subscribers, "database": args.database, "passes": args.passes,
                      "cpu_us": {p: round(v, 1) for p, v in best.items()},
                      "wall_us": {p: round(v, 1) for p, v in wall.items()},
                      "engine_cpu_us": round(engine, 1)}))


if __name__ == "__main__":
    main()
