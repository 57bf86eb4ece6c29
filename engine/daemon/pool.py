"""`funnel run --workers N`: the parent's N-1 extra worker processes, started, watched, restarted, stopped.

Each worker is `python -m engine.daemon.worker`, a fresh interpreter (nothing inherited:
no threads, sockets, database handles or event loop of the parent) that only ticks, as a
separate daemon on the same database would. Its stdin is a pipe from the parent: the first
line is its order (number, project, settings); the pipe closing is how it learns that the
parent is gone, even after a `kill -9`. Its stdout is a pipe to the parent: one JSON line
per finished tick, which the pool turns into /healthz's worker count and /metrics' counters.
Its stderr is the parent's, so its JSON log lines (with `worker`) land in the same log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.config import Settings
from engine.logs import log
from engine.stats.metrics import Metrics

WORKER_COMMAND = (sys.executable, "-m", "engine.daemon.worker")
# A worker that exits is started again after 1, 2, 4 ... seconds, at most a minute apart; one that
# ran this long before it exited starts the count again (a crash an hour, not a crash loop).
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
STEADY_SECONDS = 60.0


@dataclass
class _Slot:
    """One worker number (2..N) and the process that currently holds it."""

    number: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0  # monotonic
    last_tick: datetime | None = None  # real time of its last finished tick
    sends: dict[str, float] = field(default_factory=dict)  # the running process's totals, by outcome
    quick_exits: int = 0  # exits in a row, each before STEADY_SECONDS
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class WorkerPool:
    """The extra workers of one `funnel run`: numbers 2..N (the parent is worker 1)."""

    def __init__(
        self,
        settings: Settings,
        project: Path,
        time_scale: float,
        metrics: Metrics | None = None,
        command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        self.settings = settings
        self.project = project
        self.time_scale = time_scale
        self.metrics = metrics  # the parent's: worker ticks and sends are added to it
        self.command = tuple(command)
        self.slots = [_Slot(n) for n in range(2, settings.workers + 1)]
        self.stopping = False
        self._wake = asyncio.Event()  # cuts a back-off short when stopping
        self._tasks: list[asyncio.Task[None]] = []
        self._started_at = time.monotonic()

    async def start(self) -> None:
        """Start every worker; each is watched (and restarted) by a task of its own."""
        self._started_at = time.monotonic()
        self._tasks = [asyncio.create_task(self._keep(s), name=f"worker-{s.number}") for s in self.slots]

    async def stop(self, kill_after: float) -> None:
        """SIGTERM to every worker (each finishes its in-flight sends), wait; SIGKILL after `kill_after` s.

        A worker still running after its lease has nothing left to protect: whatever it
        claimed is claimed again by the others once the lease runs out.
        """
        self.stopping = True
        self._wake.set()
        for slot in self.slots:
            if slot.running and slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signal.SIGTERM)
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=kill_after)
        for slot in self.slots:
            if slot.running and slot.process is not None:
                log("worker_killed", logging.ERROR, worker=slot.number, after_seconds=kill_after)
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def alive(self) -> int:
        """Worker processes running now, the parent (worker 1) included."""
        return 1 + sum(slot.running for slot in self.slots)

    def health(self, now: datetime, stale_after: float) -> tuple[str, dict[str, object]]:
        """The /healthz check of the extra workers and its details.

        `stale: ...` (503) only when none of them has ticked for `stale_after` seconds since
        the pool started: sending is then the parent's alone. One worker down while others
        tick is reported (`1 of 2 alive`) but not unhealthy: the parent restarts it.
        """
        ticked = [s.last_tick for s in self.slots if s.last_tick is not None]
        recent = [t for t in ticked if (now - t).total_seconds() <= stale_after]
        detail: dict[str, object] = {
            "processes": self.settings.workers,
            "alive": self.alive(),
            "ticking": 1 + len(recent),  # the parent's own tick is the scheduler check
            "restarts": sum(s.restarts for s in self.slots),
        }
        if not recent:
            waited = time.monotonic() - self._started_at
            if waited <= stale_after:
                return "starting", detail
            last = f"{(now - max(ticked)).total_seconds():.0f}s ago" if ticked else "never"
            return f"stale: no worker ticked (last {last})", detail
        if self.alive() < self.settings.workers or len(recent) < len(self.slots):
            return f"{self.alive()} of {self.settings.workers} alive", detail
        return "ok", detail

    async def _keep(self, slot: _Slot) -> None:
        """Run the slot's worker until the pool stops, restarting it with back-off when it exits."""
        while not self.stopping:
            error = None
            try:
                status: int | None = await self._run_once(slot)
            except OSError as failed:  # could not even start it (out of processes or file handles)
                status, error = None, f"{type(failed).__name__}: {failed}"[:500]
            if self._wake.is_set():  # stop() was called while it ran
                log("worker_stopped", worker=slot.number, status=status)
                return
            ran = time.monotonic() - slot.started_at
            slot.quick_exits = slot.quick_exits + 1 if ran < STEADY_SECONDS else 1
            delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (slot.quick_exits - 1))
            log("worker_exited", logging.ERROR, worker=slot.number, status=status,
                signal=_signal_name(status), ran_seconds=round(ran, 1), restart_in=delay,
                **({"error": error} if error else {}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            slot.restarts += 0 if self.stopping else 1

    async def _run_once(self, slot: _Slot) -> int:
        """Start the slot's worker, read its tick lines until it exits; its exit status."""
        slot.sends = {}
        slot.started_at = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None, close_fds=True,
        )
        slot.process = process
        log("worker_started", worker=slot.number, pid=process.pid, restarts=slot.restarts)
        assert process.stdin is not None and process.stdout is not None
        order = {
            "worker": slot.number,
            "project": str(self.project),
            "time_scale": self.time_scale,
            "settings": self.settings.model_dump(mode="json"),
        }
        # The order goes through the pipe, not argv or the environment: `ps` shows neither keys nor
        # passwords. The pipe then stays open: its end is how the worker notices the parent is gone.
        with contextlib.suppress(ConnectionError):
            process.stdin.write(json.dumps(order).encode() + b"\n")
            await process.stdin.drain()
        if self._wake.is_set():  # stop() came while it was being started: it missed the SIGTERM
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        async for line in process.stdout:
            self._reported(slot, line)
        status = await process.wait()
        process.stdin.close()
        return status

    def _reported(self, slot: _Slot, line: bytes) -> None:
        """A worker's tick line: when it ticked, how long it took, its send counters so far."""
        try:
            report = json.loads(line)
            slot.last_tick = datetime.fromtimestamp(float(report["at"]), UTC)
            seconds = float(report["seconds"])
            sends = {str(k): float(v) for k, v in dict(report["sends"]).items()}
        except (ValueError, KeyError, TypeError):
            return  # not a tick line (a library printing to stdout): ignore it
        if self.metrics is not None:
            self.metrics.tick_seconds.observe(seconds)
            for outcome, total in sends.items():
                delta = total - slot.sends.get(outcome, 0.0)
                if delta > 0:
                    self.metrics.sends.inc(outcome, delta)
        slot.sends = sends


def _signal_name(status: int | None) -> str | None:
    """SIGKILL for -9 (asyncio's way of saying a signal ended the process); None for an exit."""
    if status is None or status >= 0:
        return None
    try:
        return signal.Signals(-status).name
    except ValueError:
        return str(-status)
