"""A daemon process's garbage collector, set once its daemon is built: start-up's objects frozen.

By the time a daemon is built, its process holds over 100,000 objects that live as long
as it does: the imported modules, the release (plans, compiled templates), SQLAlchemy's
compiled statements. CPython's cyclic collector walks them again and again: each older
collection walks every one. Sending 3,000 emails as `bench.send` does, the collector ran
94 young, 9 middle and 1 full collection and took 17.5 µs of CPU an email; settled, 3
young ones and 1.3 µs an email (docs/benchmarks.md, "Composed a round ahead, the collector
settled...").

`settle()` moves every object alive at that moment out of the collector's sight
(`gc.freeze`, as pre-fork servers do before forking) and makes young collections about
fourteen times rarer; the older generations keep their usual proportions, so garbage in
cycles is still found, a little later. Objects made afterwards are collected as before.
What start-up made and later lets go is freed by its reference count, except objects in
cycles, which stay until exit: the release live at start-up, replaced at the first edit of
the files, is the one such thing, a release's worth of memory at most.

Only for a process that runs a daemon until it exits (`funnel run`, its workers, the
benchmarks that stand in for them): freezing a test process's objects would keep its
garbage for good.
"""

from __future__ import annotations

import gc

# Young collections after this many more container objects made than freed, not CPython's 700.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, freeze what is left, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
