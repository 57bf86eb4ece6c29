"""The order of the tests under pytest-xdist: the tests that mostly wait start first, one share per worker.

A few modules spend most of their time waiting on real time: a `funnel run` walking a whole
funnel at 150,000x (92 s and 47 s), a 45-day story ticked hour by hour (45 s), daemons
killed and restarted. Collected in file order they come late, and with `--dist worksteal`
(which hands each worker one contiguous slice of the collection, then lets an idle worker
take from the end of another's) the longest could start when the other worker had almost
nothing left, ending the run on one busy core. Here each worker's slice begins with its
share of them, the longest first, so they overlap the quick tests. Only the order changes:
every test still runs, on one worker, and without xdist (one worker) the order is the files'.
"""

from __future__ import annotations

import pytest

# Longest first (seconds measured on two cores under `-n auto`, others using the machine).
WAITING = (
    "tests/web/test_end_to_end.py",  # 150 s: both shipped funnels walked by a real daemon
    "tests/daemon/test_broadcast_run.py",  # ~6 min: six daemon runs of 55-110 s on a fast clock
    "tests/daemon/test_live_edit_run.py",  # 80 s: live edits under a running daemon
    "tests/test_story.py",  # 55 s: 320 subscribers, 45 simulated days, a tick an hour
    "tests/scheduler/test_crash.py",  # 17 s: five SIGKILLs
    "tests/web/test_hostile.py",  # 17 s: ten thousand hostile posts
    "tests/test_run.py",  # 30 s: daemons started and stopped
    "tests/scheduler/test_fast_clock_daemons.py",  # 12 s: two demo daemons, a slow SMTP server
    "tests/cli/test_init.py",  # 11 s: the README's quick start and `funnel run` on the starter
)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def waiting_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """`items` reordered so that each of `workers` slices starts with its share of the WAITING modules.

    The slices are the ones worksteal sends first: the first worker len // workers items,
    the next len(rest) // (workers - 1), and so on. Each worker process computes the same
    order, as xdist requires.
    """
    if workers < 2:
        return items
    waiting: dict[str, list[pytest.Item]] = {module: [] for module in WAITING}
    rest: list[pytest.Item] = []
    for item in items:
        waiting.get(_module(item), rest).append(item)
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for index, module in enumerate(WAITING):
        heads[index % workers].extend(waiting[module])
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for worker in range(workers):
        size = remaining // (workers - worker)
        slice_ = heads[worker] + rest[: max(size - len(heads[worker]), 0)]
        del rest[: len(slice_) - len(heads[worker])]
        ordered.extend(slice_)
        remaining -= len(slice_)
    ordered.extend(rest)
    assert sorted(map(id, ordered)) == sorted(map(id, items)), "reordering lost or doubled a test"
    return ordered
