"""One extra worker of `funnel run --workers N`: `python -m engine.daemon.worker`, started by the pool.

It reads its order (its number, the project, the parent's settings) from the first line of
stdin, builds the daemon's sending parts, and ticks until SIGTERM, SIGINT or the end of
stdin: the parent closes that pipe by exiting, even when killed with -9, so a worker never
outlives it for longer than its in-flight sends. After each tick it writes one JSON line to
stdout for the parent (engine/daemon/pool.py). Its log lines carry `worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.config import Settings
from engine.daemon import heap
from engine.daemon.runner import Runner
from engine.daemon.wiring import build_daemon, open_database
from engine.errors import EngineError
from engine.logs import label_lines, log, setup_logging
from engine.scheduler.tick import TickReport
from engine.stats.metrics import SEND_OUTCOMES, Metrics

EXIT_CANNOT_START = 1


def _reporter(metrics: Metrics | None) -> Callable[[TickReport], None]:
    """Writes one line per finished tick to stdout, for the parent's /healthz and /metrics."""

    def report(tick: TickReport) -> None:
        sends = {} if metrics is None else {str(o): metrics.sends.get(o) for o in SEND_OUTCOMES}
        line = json.dumps({"at": time.time(), "seconds": round(tick.seconds, 6), "sends": sends})
        with contextlib.suppress(BrokenPipeError):  # the parent is gone; stdin's end stops this worker
            os.write(sys.stdout.fileno(), line.encode() + b"\n")

    return report


async def _parent_gone(stop: asyncio.Event) -> None:
    """Set `stop` when stdin (the parent's pipe) ends: the parent exited or was killed."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    if not stop.is_set():
        log("parent_gone", logging.WARNING, parent=os.getppid())
        stop.set()


def main() -> int:
    """Read the order, build, tick until told to stop; the exit status."""
    order = json.loads(sys.stdin.buffer.readline() or b"null")
    if not isinstance(order, dict):
        print("engine.daemon.worker is started by funnel run --workers N, not by hand", file=sys.stderr)
        return EXIT_CANNOT_START
    settings = Settings.model_validate(order["settings"])
    number, project, time_scale = int(order["worker"]), Path(order["project"]), float(order["time_scale"])
    setup_logging(settings.log_level)
    label_lines(worker=number)
    try:
        # The parent migrated it and marked its clock; a worker only joins.
        db_engine = open_database(settings, project, migrate=False, time_scale=time_scale)
        daemon = build_daemon(settings, project, db_engine=db_engine, time_scale=time_scale, guard=False)
    except EngineError as error:
        log("worker_failed", logging.ERROR, error=str(error)[:1000])
        return EXIT_CANNOT_START
    runner = Runner(daemon, serve_http=False, on_tick=_reporter(daemon.metrics))
    heap.settle()

    async def run() -> int:
        watch = asyncio.create_task(_parent_gone(runner.stop))
        try:
            return await runner.run()
        finally:
            watch.cancel()

    status = asyncio.run(run())
    # The loop's close restored SIGTERM's default: a second one (Ctrl-C reaches the whole process
    # group, then the parent sends SIGTERM) must not turn this clean exit into "killed".
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    sys.exit(main())
