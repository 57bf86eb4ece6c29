"""Editing a live funnel, as a property: random edits between the interpreter's ticks (hypothesis).

Subscribers of three segments ('one' is the default) stand at random positions of their
nurture, sales or customer path; the funnel is edited between days of `step`: an email
inserted ahead of them or behind them (with or without `send_to_passed`), one deleted,
one moved, a template renamed, the ratio changed, a segment removed. Whatever the edits:
nobody skips an unsent email that is ahead of them in their current path, nobody gets an
email twice, the ratio in force holds in every window of what they were sent, a template
renamed loses nothing (an email the release cannot render is held and goes once after the
fix), and what `validate --against-db` predicts (`funnel_impact`, engine/subscribers/impact.py,
the whole report) is what `step` then does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.flow.actions import EnterSegment, Send, Skip
from engine.flow.state import Done, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import EmailStep, PathKind, PathPlan, Plan, Role
from engine.sequences.values import Ratio
from engine.subscribers.impact import FunnelImpact, funnel_impact
from tests.flow.plans import make_plan, segment
from tests.flow.test_properties import ratios, roles_at

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SEGMENTS = ("one", "two", "three")  # 'one' is the default segment (the survey's default_segment)
WALKING = {Stage.NURTURE: PathKind.NURTURE, Stage.SALES: PathKind.SALES, Stage.CUSTOMER: PathKind.CUSTOMER}
RATIO_PATHS = (PathKind.NURTURE, PathKind.CUSTOMER)  # sales paths are all sales: no ratio

Edit = tuple[str, int, int, int, bool, bool]  # (operation, which path, a, b, a sale?, send_to_passed?)


@dataclass
class Reader:
    """One subscriber, and what the test itself knows of their walk."""

    state: State
    ahead: list[str] = field(default_factory=list)  # emails decided in path order, in time order
    roles: dict[PathKind, list[Role]] = field(default_factory=dict)  # what they were sent, per path
    not_for_them: set[str] = field(default_factory=set)  # what impact said they will not get
    left: dict[PathKind, PathPlan] = field(default_factory=dict)  # each path as it was when they left it
    queued: list[str] = field(default_factory=list)  # decided, not yet delivered (a held render)
    received: list[str] = field(default_factory=list)  # delivered, in order
    withdrawn: set[str] = field(default_factory=set)  # held, then removed from the file: never sent

    @property
    def walking(self) -> bool:
        return self.state.stage in WALKING


@dataclass
class Release:
    """The funnel as the daemon serves it, and the templates its release cannot render (days left)."""

    plan: Plan
    broken: dict[str, int] = field(default_factory=dict)


def _segment_of(plan: Plan, segment_id: str | None) -> str:
    """The segment a subscriber walks: theirs, or the default once theirs was removed."""
    return segment_id if segment_id is not None and plan.segment(segment_id) is not None \
        else plan.default_segment


def _path(plan: Plan, segment_id: str | None, kind: PathKind) -> PathPlan:
    found = plan.segment(_segment_of(plan, segment_id))
    assert found is not None
    return found.path(kind)


def _with(plan: Plan, segment_id: str, kind: PathKind, steps: list[EmailStep]) -> Plan:
    segments = []
    for seg in plan.segments:
        if seg.id == segment_id:
            path = PathPlan(kind, tuple(steps))
            paths = {k: path if k is kind else seg.path(k)
                     for k in (PathKind.NURTURE, PathKind.SALES, PathKind.CUSTOMER)}
            seg = replace(seg, nurture=paths[PathKind.NURTURE], sales=paths[PathKind.SALES],
                          customer=paths[PathKind.CUSTOMER])
        segments.append(seg)
    return replace(plan, segments=tuple(segments))


def _position(path: PathPlan, reader: Reader) -> int | None:
    """Where the test's own model puts them: the last email still in the path that they
    reached in order (a `send_to_passed` email does not count)."""
    found = [i for i in (path.index(e) for e in reader.ahead) if i is not None
             and not path.steps[i].send_to_passed]
    return found[-1] if found else None


@st.composite
def edits(draw: st.DrawFn, count: int) -> list[Edit]:
    """Indexes are taken modulo what there is to choose from."""
    kinds = ["insert", "insert", "delete", "move", "move", "rename", "ratio", "remove_segment"]
    return [(draw(st.sampled_from(kinds)), draw(st.integers(0, 8)), draw(st.integers(0, 12)),
             draw(st.integers(0, 12)), draw(st.booleans()), draw(st.booleans())) for _ in range(count)]


def _edit(release: Release, edit: Edit, n: int) -> None:
    plan = release.plan
    kind, which, a, b, sale, to_passed = edit
    if kind == "ratio":
        release.plan = replace(plan, ratio=Ratio(1 + a % 5, 1 + b % 2))
        return
    if kind == "remove_segment":
        others = [s for s in plan.segments if s.id != plan.default_segment]
        if others:
            gone = others[a % len(others)].id
            release.plan = replace(plan, segments=tuple(s for s in plan.segments if s.id != gone))
        return
    seg = plan.segments[which % len(plan.segments)]
    path_kind = (PathKind.NURTURE, PathKind.SALES, PathKind.CUSTOMER)[which // 3 % 3]
    steps = list(seg.path(path_kind).steps)
    if kind == "insert":
        role = Role.SALE if sale or path_kind is PathKind.SALES else Role.EDUCATION
        new = replace(steps[0], id=f"new-{n}", role=role, send_to_passed=to_passed, template=f"new-{n}.html")
        steps.insert(a % (len(steps) + 1), new)
    elif kind == "delete" and len(steps) > 1:
        del steps[a % len(steps)]
    elif kind == "move":
        steps.insert(b % len(steps), steps.pop(a % len(steps)))
    elif kind == "rename":
        # The template file renamed and the sequence file updated to match; until the fix reaches
        # the release (b % 4 days), an email of it that is due cannot be rendered: it is held.
        renamed = f"renamed-{n}.html"
        steps[a % len(steps)] = replace(steps[a % len(steps)], template=renamed)
        release.broken[renamed] = b % 4
    release.plan = _with(plan, seg.id, path_kind, steps)


def _start(plan: Plan, seg_id: str, stage: Stage, k: int) -> Reader:
    """A subscriber of `seg_id` who received the first `k` emails of the path `stage` walks."""
    seg = plan.segment(seg_id)
    assert seg is not None
    before = {Stage.NURTURE: (), Stage.SALES: seg.nurture.steps, Stage.CUSTOMER: seg.nurture.steps}[stage]
    path = seg.path(WALKING[stage])
    got = (*before, *path.steps[:k % len(path.steps)])
    state = State(stage, START - DAY, segment=seg_id, step=path.steps[k % len(path.steps)].id,
                  last_sent_at=START - DAY, done=tuple(Done(e.id, e.path, e.role) for e in got))
    roles: dict[PathKind, list[Role]] = {}
    for e in got:
        roles.setdefault(e.path, []).append(e.role)
    return Reader(state, [e.id for e in got], roles, received=[e.id for e in got])


def _first_send(plan: Plan, state: State, now: datetime) -> tuple[str, str | None]:
    """The email of their current path `step` sends next ("" when the path ends first), and
    the segment it belongs to."""
    stage = state.stage
    for day in range(4 * plan.email_count + 8):
        outcome = step(plan, state, Facts(), now + day * DAY)
        for action in outcome.actions:
            if isinstance(action, Send):
                return (action.email.id, action.email.segment) if action.email.path is WALKING[stage] \
                    else ("", None)
        state = outcome.state
        if state.stage is not stage:
            return "", None
    raise AssertionError("nothing was sent")  # pragma: no cover


def _impact(plan: Plan, readers: list[Reader]) -> FunnelImpact:
    """`validate --against-db` on this population: the groups and histories the database would give."""
    walkers = [r for r in readers if r.walking and r.state.step is not None]
    groups = [{"stage": r.state.stage.value, "segment": r.state.segment, "step": r.state.step,
               "magnet": None, "count": 1} for r in readers]
    # As engine/subscribers/impact.py reads them: only which email comes next is asked, not when.
    histories = Counter(replace(r.state, since=START - 400 * DAY, last_sent_at=None) for r in walkers)
    return funnel_impact(plan, groups, list(histories.items()))


def _check_prediction(plan: Plan, readers: list[Reader], now: datetime) -> None:
    """Every line of the report, against what `step` does and what the test's model knows."""
    impact = _impact(plan, readers)
    walkers = [r for r in readers if r.walking and r.state.step is not None]
    assert impact.subscribers == len([r for r in readers if r.state.stage is not Stage.ENDED])
    kinds = Counter(c.kind for c in impact.changes)
    assert set(kinds) <= {"removed_step", "next_changed", "passed_email", "removed_segment"}

    # Removed segments: how many, and that they go on in the default segment.
    gone = Counter(r.state.segment for r in walkers if plan.segment(r.state.segment) is None)
    said = {c.detail["segment"]: c.count for c in impact.changes if c.kind == "removed_segment"}
    assert said == dict(gone)
    assert all(c.detail["default_segment"] == plan.default_segment for c in impact.changes
               if c.kind == "removed_segment")
    for r in walkers:
        if plan.segment(r.state.segment) is None:
            moved = step(plan, r.state, Facts(), now)
            assert any(isinstance(a, EnterSegment) and a.segment == plan.default_segment
                       for a in moved.actions)
            sent, seg = _first_send(plan, r.state, now)
            assert sent == "" or seg == plan.default_segment

    # Removed steps and new next emails: per (segment, stage, step), who continues with what.
    predicted = {(c.detail["segment"], c.detail["stage"], c.detail["step"]): c.detail["continue_with"]
                 for c in impact.changes if c.kind in ("removed_step", "next_changed")}
    actual: dict[tuple[str, str, str], Counter[str | None]] = {}
    for r in walkers:
        if plan.segment(r.state.segment) is None:
            continue
        where = (str(r.state.segment), r.state.stage.value, str(r.state.step))
        sent, _ = _first_send(plan, r.state, now)
        if sent != r.state.step:  # those at the same step who still get it are not in the line
            actual.setdefault(where, Counter())[sent or None] += 1
    assert {w: dict(c) for w, c in actual.items()} == predicted

    # Emails behind some subscribers: how many passed them, how many will get them.
    passed: Counter[tuple[str, str, str]] = Counter()
    ahead: Counter[tuple[str, str, str]] = Counter()
    for r in walkers:
        if plan.segment(r.state.segment) is None:
            continue
        path = _path(plan, r.state.segment, WALKING[r.state.stage])
        at, done = _position(path, r), r.state.passed_ids()
        for i, email in enumerate(path.steps):
            if email.id not in done and at is not None and i < at:
                passed[(str(r.state.segment), r.state.stage.value, email.id)] += 1
        r.not_for_them = {e.id for i, e in enumerate(path.steps) if e.id not in done and at is not None
                          and i < at and not e.send_to_passed}
    for r in walkers:
        if plan.segment(r.state.segment) is None:
            continue
        path = _path(plan, r.state.segment, WALKING[r.state.stage])
        at, done = _position(path, r), r.state.passed_ids()
        for i, email in enumerate(path.steps):
            where = (str(r.state.segment), r.state.stage.value, email.id)
            if where in passed and email.id not in done and (at is None or i > at):
                ahead[where] += 1
    said_passed = {(c.detail["segment"], c.detail["stage"], c.detail["email"]):
                   (c.detail["passed"], c.detail["ahead"], c.detail["passed_get_it"])
                   for c in impact.changes if c.kind == "passed_email"}
    assert said_passed == {w: (n, ahead[w], plan.email(w[2]).send_to_passed)  # type: ignore[union-attr]
                           for w, n in passed.items()}


def _deliver(release: Release, reader: Reader) -> None:
    """The sending half: what the release renders goes out; an email it cannot render is held."""
    for email_id in list(reader.queued):
        email = release.plan.email(email_id)
        if email is None:  # removed from the file while held: not to be sent (engine/scheduler/sending.py)
            reader.withdrawn.add(email_id)
        elif email.template in release.broken:
            continue
        else:
            assert email_id not in reader.received, "received twice"
            reader.received.append(email_id)
        reader.queued.remove(email_id)


def _day(release: Release, reader: Reader, now: datetime) -> None:
    """One day of `step` for `reader`, checking every decision against the test's model."""
    plan = release.plan
    before = reader.state.stage
    # What the daemon's facts say: the emails still held for their files (engine/scheduler/decide.py).
    outcome = step(plan, reader.state, Facts(held=tuple(reader.queued)), now)
    done = set(reader.state.passed_ids())
    segment_id = _segment_of(plan, reader.state.segment)
    for action in outcome.actions:
        if not isinstance(action, Send | Skip):
            continue
        email = action.email
        path = _path(plan, segment_id, email.path)
        assert email.segment == segment_id, "an email of another segment"
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
            reader.queued.append(email.id)
            roles = reader.roles.setdefault(email.path, [])
            roles.append(email.role)
            if email.path in RATIO_PATHS:
                # The ratio in force when the sale went (a ratio edit does not rewrite the past).
                window = roles[-plan.ratio.window:]
                assert email.role is not Role.SALE or window.count(Role.SALE) <= plan.ratio.sale
                assert roles[0] is Role.EDUCATION
    if before in WALKING and outcome.state.stage is not before:
        reader.left[WALKING[before]] = _path(plan, segment_id, WALKING[before])
    reader.state = outcome.state


def _tick(release: Release, readers: list[Reader], now: datetime) -> None:
    for reader in readers:
        if reader.walking:
            _day(release, reader, now)
        _deliver(release, reader)
    release.broken = {t: d - 1 for t, d in release.broken.items() if d > 1}  # 0 days: never held


@given(ratios(), st.lists(st.lists(st.booleans(), min_size=2, max_size=8), min_size=6, max_size=6),
       st.lists(st.tuples(st.integers(0, 2), st.sampled_from(list(WALKING)), st.integers(0, 11)),
                min_size=1, max_size=6),
       st.integers(1, 6).flatmap(edits), st.integers(0, 3))
def test_edits_never_skip_ahead_nor_repeat_and_impact_predicts_step(
        ratio: Ratio, wants: list[list[bool]], starts: list[tuple[int, Stage, int]],
        changes: list[Edit], days: int) -> None:
    segments = [segment(seg, nurture=roles_at(ratio, wants[2 * i]), sales="S" * (1 + len(wants[2 * i]) % 3),
                        customer=roles_at(ratio, wants[2 * i + 1]), spacing=DAY)
                for i, seg in enumerate(SEGMENTS)]
    release = Release(make_plan(*segments, ratio=ratio))
    readers = [_start(release.plan, SEGMENTS[s], stage, k) for s, stage, k in starts]
    now = START
    for n, change in enumerate(changes):
        _edit(release, change, n)
        _check_prediction(release.plan, readers, now)
        for _ in range(days):
            _tick(release, readers, now)
            now += DAY
    for _ in range(4 * release.plan.email_count + 8):  # walked to the end, the fix released
        _tick(release, readers, now)
        now += DAY
    for reader in readers:
        assert not reader.walking
        for kind, path in reader.left.items():  # nothing ahead of them was left unsent
            at = _position(path, reader)
            assert all(e.id in reader.state.passed_ids()
                       for e in path.steps[(at + 1 if at is not None else 0):]), kind
        # Nothing held was lost, nothing went twice: every email sent was delivered once,
        # unless the marketer removed it from the file while it was held.
        assert not reader.queued
        assert len(reader.received) == len(set(reader.received))
        assert set(reader.received) | reader.withdrawn == reader.state.sent_ids()


def test_a_held_email_keeps_its_place_in_what_they_receive() -> None:
    # E E E E S E E E E S under 4:1; they got the first four; the sale's template is renamed and
    # the release cannot render it for three days, one email a day.
    roles = "EEEESEEEES"
    release = Release(make_plan(segment("one", nurture=roles, spacing=DAY), segment("two")))
    reader = _start(release.plan, "one", Stage.NURTURE, 4)
    _edit(release, ("rename", 0, 4, 3, False, False), 0)
    now = START
    for _ in range(14):
        _tick(release, [reader], now)
        now += DAY
    assert reader.received[:10] == [f"one-nurture-{i}" for i in range(10)]  # 5 waits for the held 4
