"""Properties of timelines that mix sequence emails and broadcasts (hypothesis)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.flow.actions import Defer, Send, Skip
from engine.flow.simulate import Script, Timeline, simulate
from engine.flow.state import Stage
from engine.sequences.plan import Audience, BroadcastPlan, PathKind, Plan, RatioBreak, Role
from tests.flow.plans import broadcast, with_broadcasts
from tests.flow.test_properties import plans, scripts


@st.composite
def with_some_broadcasts(draw: st.DrawFn) -> tuple[Plan, Script]:
    plan, script = draw(plans()), draw(scripts())
    made: list[BroadcastPlan] = []
    for i in range(draw(st.integers(1, 4))):
        offset = timedelta(hours=draw(st.integers(0, 100 * 24)))
        local = draw(st.booleans())
        at = script.start + offset
        made.append(
            broadcast(
                f"b{i}",
                role=draw(st.sampled_from("SSE")),
                at=at.replace(tzinfo=None) if local else at,
                local=local,
                audience=draw(st.sampled_from([Audience(), Audience(segments=frozenset({"one"}))])),
                use_window=draw(st.booleans()),
                when_ratio_breaks=draw(st.sampled_from(list(RatioBreak))),
            )
        )
    return with_broadcasts(plan, *made), script


def _walking(during: Stage | None) -> PathKind | None:
    """The path a broadcast counts in: the one walked in the stage it went in."""
    assert during is not None  # every broadcast the interpreter records keeps its stage
    return during.path


def _sent(timeline: Timeline) -> list[Send]:
    return [e.action for e in timeline.sends() if isinstance(e.action, Send)]


@given(with_some_broadcasts())
def test_a_sale_broadcast_never_breaks_the_ratio(case: tuple[Plan, Script]) -> None:
    plan, script = case
    timeline = simulate(plan, script)
    entries = timeline.sends()
    assert timeline.final is not None
    # The stage each broadcast went in (the step's own, before any move the same step made).
    went_in = {d.step: d.during for d in timeline.final.done if d.path is PathKind.BROADCAST}
    marketing = [
        (e, e.action.email) for e in entries if isinstance(e.action, Send) and e.action.email.marketing
    ]
    ratio = plan.ratio
    for i, (_, email) in enumerate(marketing):
        if email.path is PathKind.BROADCAST and email.role is Role.SALE:
            assert Role.EDUCATION in [e.role for _, e in marketing[:i]], (
                email.id,
                [e.id for _, e in marketing],
            )
    # The ratio's running window is each mixed path's emails (as for sequences alone) with the
    # broadcasts that came while the person walked it: every window that holds a broadcast's
    # sale has room for it.
    for kind in (PathKind.NURTURE, PathKind.CUSTOMER):
        mixed = [
            email
            for _, email in marketing
            if email.path is kind
            or (email.path is PathKind.BROADCAST and _walking(went_in[email.id]) is kind)
        ]
        for i, email in enumerate(mixed):
            if email.path is not PathKind.BROADCAST or email.role is not Role.SALE:
                continue
            for start in range(max(0, i - ratio.window + 1), i + 1):
                window = mixed[start : start + ratio.window]
                assert sum(e.role is Role.SALE for e in window) <= ratio.sale, (
                    ratio,
                    kind,
                    [f"{e.id}:{e.role.value}" for e in mixed],
                )


@given(with_some_broadcasts())
def test_nothing_goes_twice_and_every_deferred_sale_goes_or_is_skipped_with_a_reason(
    case: tuple[Plan, Script],
) -> None:
    plan, script = case
    timeline = simulate(plan, script)
    ids = [s.email.id for s in _sent(timeline)]
    assert len(ids) == len(set(ids))
    deferred = {e.action.email.id for e in timeline.entries if isinstance(e.action, Defer)}
    settled = set(ids) | {e.action.email.id for e in timeline.entries if isinstance(e.action, Skip)}
    waiting = deferred - settled
    # A sale still deferred at the end is one the ratio has not let go yet, or one whose path
    # the person left (unsubscribed, bought, went idle): never one that could have gone.
    final = timeline.final
    assert final is not None
    for step_id in waiting:
        email = plan.email(step_id)
        assert email is not None
        if final.stage.path is email.path:
            # Its window: the path's emails and the broadcasts that went while it was walked. A
            # deferred sale goes at the path's next slot once the window has room: at the last
            # slot (the path's last email that went) it had none, else it would have gone then.
            window = [d for d in final.done if not d.skipped and (
                d.path is email.path or (d.path is PathKind.BROADCAST and _walking(d.during) is email.path))]
            slots = [i for i, d in enumerate(window) if d.path is email.path]
            roles = [d.role for d in (window[:slots[-1]] if slots else window)]
            recent = roles[-(plan.ratio.window - 1) :] if plan.ratio.window > 1 else []
            assert sum(r is Role.SALE for r in recent) + 1 > plan.ratio.sale, (step_id, roles)


@settings(max_examples=200, deadline=None)
@given(with_some_broadcasts())
def test_a_broadcast_reaches_a_recipient_at_most_once_and_never_before_it_is_due(
    case: tuple[Plan, Script],
) -> None:
    plan, script = case
    for entry in simulate(plan, script).sends():
        assert isinstance(entry.action, Send)
        found = plan.broadcast(entry.action.email.id)
        if found is not None:
            assert entry.at >= found.due_at(script.timezone)
            if found.use_window and plan.window is not None:
                assert plan.window.contains(entry.at, script.timezone)
