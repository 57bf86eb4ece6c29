"""How much CPU other processes took during a measurement: a 2-core box shared with test runs skews rates."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")  # /proc times are in clock ticks, 100 a second on Linux


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far: the whole machine busy, this process, and its child processes (the sink)."""

    wall: float
    machine: float
    own: float
    children: float


def sample() -> CpuSample:
    """CPU use so far, read from /proc (Linux only; zeros elsewhere)."""
    return CpuSample(time.perf_counter(), _machine_busy(), time.process_time(), _children_cpu())


def others_cores(start: CpuSample, end: CpuSample) -> float:
    """Cores, on average, that processes other than this one and its children kept busy in between."""
    wall = end.wall - start.wall
    if wall <= 0:
        return 0.0
    busy = (end.machine - start.machine) - (end.own - start.own) - (end.children - start.children)
    return max(busy, 0.0) / wall


def _machine_busy() -> float:
    try:
        # "cpu  user nice system idle iowait irq softirq steal ...": busy is all but idle and iowait.
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


def _children_cpu() -> float:
    total = 0.0
    try:
        tasks = list(Path(f"/proc/{os.getpid()}/task").iterdir())
        pids = {pid for task in tasks for pid in (task / "children").read_text().split()}
        for pid in pids:
            # Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(stat[11]) + int(stat[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return total
    return total
