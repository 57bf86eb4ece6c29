"""Properties of timelines that mix sequence emails and broadcasts (hypothesis)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.flow.actions import Defer, Send, Skip
from engine.flow.simulate import Script, Timeline, simulate
from engine.sequences.plan import Audience, BroadcastPlan, PathKind, Plan, RatioBreak, Role
from tests.flow.plans import broadcast, with_broadcasts
from tests.flow.test_properties import plans, scripts

# The emails the ratio is kept over: the paths that mix teaching and selling, and broadcasts.
RATIO_KINDS = (PathKind.NURTURE, PathKind.CUSTOMER, PathKind.BROADCAST)


@st.composite
def with_some_broadcasts(draw: st.DrawFn) -> tuple[Plan, Script]:
    plan, script = draw(plans()), draw(scripts())
    made: list[BroadcastPlan] = []
    for i in range(draw(st.integers(1, 4))):
        offset = timedelta(hours=draw(st.integers(0, 100 * 24)))
        local = draw(st.booleans())
        at = script.start + offset
        made.append(broadcast(
            f"b{i}", role=draw(st.sampled_from("SSE")),
            at=at.replace(tzinfo=None) if local else at, local=local,
            audience=draw(st.sampled_from([Audience(), Audience(segments=frozenset({"one"}))])),
            use_window=draw(st.booleans()),
            when_ratio_breaks=draw(st.sampled_from(list(RatioBreak)))))
    return with_broadcasts(plan, *made), script


def _sent(timeline: Timeline) -> list[Send]:
    return [e.action for e in timeline.sends() if isinstance(e.action, Send)]


@settings(max_examples=300, deadline=None)
@given(with_some_broadcasts())
def test_a_sale_broadcast_never_breaks_the_ratio(case: tuple[Plan, Script]) -> None:
    plan, script = case
    sent = _sent(simulate(plan, script))
    marketing = [s.email for s in sent if s.email.marketing]
    mixed = [e for e in marketing if e.path in RATIO_KINDS]
    ratio = plan.ratio
    for i, email in enumerate(mixed):
        if email.path is not PathKind.BROADCAST or email.role is not Role.SALE:
            continue
        before = marketing[:marketing.index(email)]
        assert Role.EDUCATION in [e.role for e in before], (email.id, [e.id for e in marketing])
        # Every window of `ratio.window` emails that holds this sale has room for it.
        for start in range(max(0, i - ratio.window + 1), i + 1):
            window = mixed[start:start + ratio.window]
            assert sum(e.role is Role.SALE for e in window) <= ratio.sale, (
                ratio, [f"{e.id}:{e.role.value}" for e in mixed])


@settings(max_examples=300, deadline=None)
@given(with_some_broadcasts())
def test_nothing_goes_twice_and_every_deferred_sale_goes_or_is_skipped_with_a_reason(
        case: tuple[Plan, Script]) -> None:
    plan, script = case
    timeline = simulate(plan, script)
    ids = [s.email.id for s in _sent(timeline)]
    assert len(ids) == len(set(ids))
    deferred = {e.action.email.id for e in timeline.entries if isinstance(e.action, Defer)}
    settled = set(ids) | {e.action.email.id for e in timeline.entries if isinstance(e.action, Skip)}
    waiting = deferred - settled
    # A sale still deferred at the end of the simulation is one the ratio has not let go yet:
    # the enrollment is still in the path that holds it.
    if waiting:
        assert timeline.final is not None and timeline.final.stage.path in (PathKind.NURTURE,
                                                                            PathKind.CUSTOMER)


@settings(max_examples=200, deadline=None)
@given(with_some_broadcasts())
def test_a_broadcast_reaches_a_recipient_at_most_once_and_never_before_it_is_due(
        case: tuple[Plan, Script]) -> None:
    plan, script = case
    for entry in simulate(plan, script).sends():
        assert isinstance(entry.action, Send)
        found = plan.broadcast(entry.action.email.id)
        if found is not None:
            assert entry.at >= found.due_at(script.timezone)
            if found.use_window and plan.window is not None:
                assert plan.window.contains(entry.at, script.timezone)
