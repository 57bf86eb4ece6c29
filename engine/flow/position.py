"""Where a subscriber stands in a path that may have been edited since they entered it.

One rule, used by `step` (the daemon and `funnel simulate`) and, through `explain`, by
`funnel validate --against-db`: a subscriber goes on with the first email, in the path's
current order, that they have not received and that lies after their position (the last
email they received that is still in the path). An email behind that position which they
never got was inserted (or moved) behind them: it is not sent, unless it says
`send_to_passed: true`.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.flow.state import Done
from engine.sequences.plan import EmailStep, PathPlan


def position(path: PathPlan, done: Sequence[Done]) -> int | None:
    """The index of the last email of `path` the subscriber received (or skipped); None: none is in it.

    "Last" is the latest in time, not the furthest in the file: moving an email they got to
    the end of the path must not make them skip every email in between. A `send_to_passed`
    email does not count: it may have been sent behind them, and counting it would move
    them back (or, moved ahead later, forward over emails they never got). Nor does a
    deferred sale (engine/flow/broadcasts.py): it goes after the emails that follow it.
    """
    for each in reversed(done):
        if each.deferred:  # a sale that waited for the ratio went (or waits) out of the path's order
            continue
        index = path.index(each.step)
        if index is not None and not path.steps[index].send_to_passed:
            return index
    return None


def next_email(path: PathPlan, done: Sequence[Done]) -> EmailStep | None:
    """The email the subscriber goes on with; None: nothing of this path is left for them."""
    passed = {d.step for d in done}
    at = position(path, done)
    return next((e for i, e in enumerate(path.steps) if e.id not in passed
                 and (at is None or i > at or e.send_to_passed)), None)


def passed_unsent(path: PathPlan, done: Sequence[Done]) -> tuple[EmailStep, ...]:
    """The emails of `path` behind the subscriber's position that they never got."""
    passed = {d.step for d in done}
    at = position(path, done)
    if at is None:
        return ()
    return tuple(e for e in path.steps[:at] if e.id not in passed)
