"""Editing a live path, as a property: random edits between the interpreter's ticks (hypothesis).

Subscribers stand at random positions of a nurture path; the path is edited (an email
inserted ahead of them or behind them, with or without `send_to_passed`, one deleted,
one moved, the ratio changed) between days of `step`. Whatever the edits: nobody skips
an unsent email that is ahead of them in their current path, nobody gets an email twice,
the ratio in force holds in every window of what they received, and what `validate
--against-db` predicts (engine/subscribers/impact.py) is what `step` then does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.flow.actions import Send, Skip
from engine.flow.state import Done, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import EmailStep, PathKind, PathPlan, Plan, Role
from engine.sequences.values import Ratio
from engine.subscribers.impact import _walking_changes
from tests.flow.plans import make_plan, segment
from tests.flow.test_properties import ratios, roles_at

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class Reader:
    """One subscriber, and what the test itself knows of their walk."""

    state: State
    ahead: list[str] = field(default_factory=list)  # emails decided in path order, in time order
    roles: list[Role] = field(default_factory=list)  # what they received, in order
    not_for_them: set[str] = field(default_factory=set)  # what impact said they will not get
    left: PathPlan | None = None  # the path as it was when they finished it


def _nurture(plan: Plan) -> PathPlan:
    return plan.segments[0].nurture


def _with(plan: Plan, steps: list[EmailStep]) -> Plan:
    seg = plan.segments[0]
    return replace(plan, segments=(replace(seg, nurture=PathPlan(PathKind.NURTURE, tuple(steps))),))


def _position(path: PathPlan, reader: Reader) -> int | None:
    """Where the test's own model puts them: the last email still in the path that they
    reached in order (a `send_to_passed` email does not count)."""
    found = [path.index(i) for i in reader.ahead if path.index(i) is not None
             and not path.steps[path.index(i) or 0].send_to_passed]
    return found[-1] if found else None


@st.composite
def edits(draw: st.DrawFn, count: int) -> list[tuple[str, int, int, bool, bool]]:
    """(operation, a, b, a sale?, send_to_passed?): indexes are taken modulo the path's length."""
    return [(draw(st.sampled_from(["insert", "insert", "delete", "move", "move", "ratio"])),
             draw(st.integers(0, 12)), draw(st.integers(0, 12)), draw(st.booleans()),
             draw(st.booleans())) for _ in range(count)]


def _edit(plan: Plan, edit: tuple[str, int, int, bool, bool], n: int) -> Plan:
    kind, a, b, sale, to_passed = edit
    steps = list(_nurture(plan).steps)
    if kind == "ratio":
        return replace(plan, ratio=Ratio(1 + a % 5, 1 + b % 2))
    if kind == "insert":
        new = replace(steps[0], id=f"new-{n}", role=Role.SALE if sale else Role.EDUCATION,
                      send_to_passed=to_passed)
        steps.insert(a % (len(steps) + 1), new)
    elif kind == "delete" and len(steps) > 1:
        del steps[a % len(steps)]
    elif kind == "move":
        steps.insert(b % len(steps), steps.pop(a % len(steps)))
    return _with(plan, steps)


def _predicted(plan: Plan, state: State) -> tuple[str | None, set[str]]:
    """What impact says: the email they continue with ("" for none) and the emails they will not get."""
    changes = _walking_changes(plan, [(replace(state, since=START - 400 * DAY, last_sent_at=None), 1)])
    nexts = [c.detail["continue_with"] for c in changes if c.kind in ("removed_step", "next_changed")]
    never = {c.detail["email"] for c in changes if c.kind == "passed_email"
             and not c.detail["passed_get_it"]}
    if not nexts:
        return state.step, never
    return next(iter(nexts[0])) or "", never


def _first_send(plan: Plan, state: State, now: datetime) -> str:
    """The nurture email `step` sends next ("" when the path ends first)."""
    for day in range(4 * len(_nurture(plan).steps) + 8):
        outcome = step(plan, state, Facts(), now + day * DAY)
        for action in outcome.actions:
            if isinstance(action, Send):
                return action.email.id if action.email.path is PathKind.NURTURE else ""
        state = outcome.state
        if state.stage is not Stage.NURTURE:
            return ""
    raise AssertionError("nothing was sent")  # pragma: no cover


def _day(plan: Plan, reader: Reader, now: datetime) -> None:
    """One day of `step` for `reader`, checking every decision against the test's model."""
    path = _nurture(plan)
    outcome = step(plan, reader.state, Facts(), now)
    done = set(reader.state.passed_ids())
    for action in outcome.actions:
        if not isinstance(action, Send | Skip) or action.email.path is not PathKind.NURTURE:
            continue
        email = action.email
        at, index = _position(path, reader), path.index(email.id)
        assert index is not None and email.id not in done, "sent twice, or not in the path"
        if at is not None and index < at:  # behind them: only on send_to_passed (a sale may be skipped)
            assert email.send_to_passed
        else:
            between = path.steps[(at + 1 if at is not None else 0):index]
            assert all(e.id in done for e in between), "skipped an unsent email ahead"
            if not email.send_to_passed:  # it counts for nobody's position (docs/interpreter.md)
                reader.ahead.append(email.id)
        assert email.id not in reader.not_for_them, "impact said they would not get it"
        done.add(email.id)
        if isinstance(action, Send):
            reader.roles.append(email.role)
            # The ratio in force when the sale went (a ratio edit does not rewrite the past).
            window = reader.roles[-plan.ratio.window:]
            assert email.role is not Role.SALE or window.count(Role.SALE) <= plan.ratio.sale
            assert reader.roles[0] is Role.EDUCATION
    reader.state = outcome.state
    if reader.state.stage is not Stage.NURTURE:
        reader.left = path


@given(ratios(), st.lists(st.booleans(), min_size=2, max_size=12), st.lists(st.integers(0, 11),
       min_size=1, max_size=4), st.integers(1, 6).flatmap(edits), st.integers(0, 3))
def test_edits_never_skip_ahead_nor_repeat_and_impact_predicts_step(
        ratio: Ratio, wants: list[bool], starts: list[int],
        changes: list[tuple[str, int, int, bool, bool]], days: int) -> None:
    plan = make_plan(segment("one", nurture=roles_at(ratio, wants), spacing=DAY), ratio=ratio)
    path = _nurture(plan)
    readers = []
    for k in (s % len(path.steps) for s in starts):
        got = path.steps[:k]
        state = State(Stage.NURTURE, START - DAY, segment="one", step=path.steps[k].id,
                      last_sent_at=START - DAY, done=tuple(Done(e.id, PathKind.NURTURE, e.role) for e in got))
        readers.append(Reader(state, [e.id for e in got], [e.role for e in got]))
    now = START
    for n, change in enumerate(changes):
        plan = _edit(plan, change, n)
        for reader in readers:
            if reader.state.stage is Stage.NURTURE and reader.state.step is not None:
                expected, never = _predicted(plan, reader.state)
                assert _first_send(plan, reader.state, now) == expected
                reader.not_for_them = never
        for _ in range(days):
            for reader in readers:
                if reader.state.stage is Stage.NURTURE:
                    _day(plan, reader, now)
            now += DAY
    for reader in readers:  # walked to the end: nothing ahead of them is left unsent
        for _ in range(3 * len(_nurture(plan).steps) + 4):
            if reader.state.stage is Stage.NURTURE:
                _day(plan, reader, now)
            now += DAY
        path = reader.left or _nurture(plan)
        at = _position(path, reader)
        assert all(e.id in reader.state.passed_ids() for e in path.steps[(at + 1 if at is not None else 0):])
