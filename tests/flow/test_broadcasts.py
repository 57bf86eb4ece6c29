"""Broadcasts in the interpreter: when one goes, waits or is skipped, and the ratio it shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.flow import waits
from engine.flow.actions import Defer, Send, Skip
from engine.flow.broadcasts import matches
from engine.flow.simulate import Script, simulate
from engine.flow.state import Done, Event, EventType, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import Audience, PathKind, Plan, RatioBreak, Role
from engine.sequences.values import parse_cap, parse_window
from tests.flow.plans import broadcast, make_plan, segment, with_broadcasts

NOW = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _plan(nurture: str = "EEEESEEEES", **kwargs: object) -> Plan:
    return make_plan(segment("one", nurture=nurture), segment("two"), cap=parse_cap("5/day"),
                     **kwargs)  # type: ignore[arg-type]


def _done(plan: Plan, roles: str) -> tuple[Done, ...]:
    """The first len(roles) nurture emails of segment one, sent (their roles must match the plan's)."""
    steps = plan.segments[0].nurture.steps[:len(roles)]
    assert "".join("S" if s.role is Role.SALE else "E" for s in steps) == roles
    return tuple(Done(s.id, PathKind.NURTURE, s.role) for s in steps)


def _nurturing(plan: Plan, roles: str, last_sent: datetime = NOW - DAY) -> State:
    nxt = plan.segments[0].nurture.steps[len(roles)].id
    return State(stage=Stage.NURTURE, since=NOW - 30 * DAY, segment="one", step=nxt,
                 last_sent_at=last_sent, done=_done(plan, roles))


def _facts(*pending: tuple[str, datetime], **kwargs: object) -> Facts:
    return Facts(broadcasts=tuple(pending), joined_at=NOW - 30 * DAY, **kwargs)  # type: ignore[arg-type]


def _sent(outcome_actions: tuple[object, ...]) -> list[str]:
    return [a.email.id for a in outcome_actions if isinstance(a, Send)]


def test_a_due_broadcast_goes_and_is_noted_once() -> None:
    plan = with_broadcasts(_plan(), broadcast("news", role="E"))
    state = _nurturing(plan, "EE")
    outcome = step(plan, state, _facts(("news", NOW)), NOW)
    assert _sent(outcome.actions) == ["news"]
    assert outcome.state.done[-1] == Done("news", PathKind.BROADCAST, Role.EDUCATION, during=Stage.NURTURE)
    assert outcome.state.last_sent_at == state.last_sent_at  # the path's spacing is its own
    again = step(plan, outcome.state, _facts(("news", NOW)), NOW + timedelta(minutes=1))
    assert _sent(again.actions) == []


def test_before_it_is_due_the_enrollment_wakes_for_it_unless_the_path_wakes_sooner() -> None:
    plan = with_broadcasts(_plan(), broadcast("news", role="E"))
    state = _nurturing(plan, "EE", last_sent=NOW)  # next nurture email due in 2 days
    outcome = step(plan, state, _facts(("news", NOW + timedelta(hours=5))), NOW)
    assert outcome.wait == waits.BroadcastDue(plan.broadcasts[0].email, NOW + timedelta(hours=5))
    assert outcome.wake_at == NOW + timedelta(hours=5)
    later = step(plan, state, _facts(("news", NOW + 5 * DAY)), NOW)
    assert isinstance(later.wait, waits.Spacing) and later.wake_at == NOW + 2 * DAY


def test_the_unsubscribed_the_unconfirmed_and_those_in_winback_are_skipped_with_the_reason() -> None:
    plan = with_broadcasts(_plan(), broadcast("news", role="E"))
    cases = {
        "they unsubscribed": (_nurturing(plan, "EE"),
                              _facts(("news", NOW), events=(Event(EventType.UNSUBSCRIBE, NOW - DAY),))),
        "they have not confirmed their address": (State(stage=Stage.CONFIRMING, since=NOW - DAY),
                                                   _facts(("news", NOW))),
        "they are in win-back": (State(stage=Stage.WINBACK, since=NOW - DAY, segment="one"),
                                 _facts(("news", NOW))),
    }
    for reason, (state, facts) in cases.items():
        outcome = step(plan, state, facts, NOW)
        skips = [a for a in outcome.actions if isinstance(a, Skip) and a.email.id == "news"]
        assert [s.reason for s in skips] == [reason]
        assert not _sent(outcome.actions) or "news" not in _sent(outcome.actions)


def test_a_bounced_address_skips_every_pending_broadcast_as_it_ends() -> None:
    plan = with_broadcasts(_plan(), broadcast("news", role="E"), broadcast("later", role="E"))
    outcome = step(plan, _nurturing(plan, "EE"),
                   _facts(("news", NOW), ("later", NOW + DAY), status="bounced"), NOW)
    assert [(a.email.id, a.reason) for a in outcome.actions if isinstance(a, Skip)] == [
        ("news", "the address bounced"), ("later", "the address bounced")]
    assert outcome.state.stage is Stage.ENDED


def test_the_send_window_holds_it_unless_the_file_says_ignore() -> None:
    window = parse_window("mon-fri 13:00-17:00")  # NOW is a Tuesday, 09:00 UTC
    plan = with_broadcasts(_plan(window=window), broadcast("news", role="E"))
    outcome = step(plan, _nurturing(plan, "EE", last_sent=NOW), _facts(("news", NOW)), NOW)
    assert outcome.wait == waits.OutsideWindow(NOW.replace(hour=13))
    free = with_broadcasts(_plan(window=window), broadcast("news", role="E", use_window=False))
    assert _sent(step(free, _nurturing(free, "EE", last_sent=NOW), _facts(("news", NOW)), NOW).actions) \
        == ["news"]


def test_the_frequency_cap_counts_broadcasts() -> None:
    plan = with_broadcasts(make_plan(segment("one"), segment("two"), cap=parse_cap("1/day")),
                           broadcast("news", role="E"))
    state = State(stage=Stage.NURTURE, since=NOW - DAY * 3, segment="one",
                  step=plan.segments[0].nurture.steps[0].id)
    outcome = step(plan, state, _facts(("news", NOW)), NOW)
    # The broadcast went; the nurture email, due too, waits for the next local day.
    assert _sent(outcome.actions) == ["news"]
    assert isinstance(outcome.wait, waits.CapReached)


def test_a_paused_broadcast_waits_for_a_resume() -> None:
    plan = with_broadcasts(_plan(), broadcast("news", role="E"))
    paused = _facts(("news", NOW), paused=frozenset({"news"}))
    idle = State(stage=Stage.SALES_DONE, since=NOW - DAY, segment="one", done=_done(plan, "EEEE"))
    outcome = step(plan, idle, paused, NOW)
    assert outcome.wait == waits.Paused(plan.broadcasts[0].email) and not outcome.actions
    # The path's own wait keeps its time: a paused broadcast holds nothing else.
    walking = step(plan, _nurturing(plan, "EE", last_sent=NOW), paused, NOW)
    assert isinstance(walking.wait, waits.Spacing) and not walking.actions


def test_a_sale_broadcast_is_skipped_where_it_would_break_the_ratio_looking_back() -> None:
    plan = with_broadcasts(_plan(), broadcast("sale"))
    after_a_sale = step(plan, _nurturing(plan, "EEEES", last_sent=NOW), _facts(("sale", NOW)), NOW)
    assert [a.reason for a in after_a_sale.actions if isinstance(a, Skip)] == [
        "a sale reached them within their last 4 emails"]
    fresh = State(stage=Stage.SURVEY, since=NOW, segment=None)
    nothing_yet = step(plan, fresh, _facts(("sale", NOW)), NOW)
    assert [a.reason for a in nothing_yet.actions if isinstance(a, Skip)] == [
        "they have had no education email yet"]
    far_enough = with_broadcasts(_plan(nurture="EEEESEEEESE"), broadcast("sale"))
    ok = step(far_enough, _nurturing(far_enough, "EEEESEEEE", last_sent=NOW), _facts(("sale", NOW)), NOW)
    # Their next nurture email is a sale: `skip` spares them (looking ahead), `defer` does not.
    assert [a.reason for a in ok.actions if isinstance(a, Skip)] == [
        "a sale of their sequence is due within their next 4 emails"]
    deferring = with_broadcasts(_plan(nurture="EEEESEEEESE"),
                                broadcast("sale", when_ratio_breaks=RatioBreak.DEFER))
    went = step(deferring, _nurturing(deferring, "EEEESEEEE", last_sent=NOW), _facts(("sale", NOW)), NOW)
    assert _sent(went.actions) == ["sale"]


def test_defer_sends_the_broadcast_and_the_next_sequence_sale_waits_for_four_education_emails() -> None:
    plan = with_broadcasts(_plan(nurture="EEEESEEEEEES"),
                           broadcast("sale", when_ratio_breaks=RatioBreak.DEFER))
    timeline = simulate(plan, Script(start=datetime(2026, 1, 5, tzinfo=UTC), days=80))
    sale_at = timeline.sends()[0].at  # any moment is fine: place the broadcast mid-nurture
    nurture = [e for e in timeline.sends() if e.action.email.path is PathKind.NURTURE]
    moment = nurture[3].at + timedelta(hours=1)  # after E E E E, before the path's sale
    plan = with_broadcasts(_plan(nurture="EEEESEEEEEES"),
                           broadcast("sale", at=moment, when_ratio_breaks=RatioBreak.DEFER))
    timeline = simulate(plan, Script(start=datetime(2026, 1, 5, tzinfo=UTC), days=80))
    order = [e.action.email.id for e in timeline.sends()
             if e.action.email.path in (PathKind.NURTURE, PathKind.BROADCAST)]
    steps = [s.id for s in plan.segments[0].nurture.steps]
    # The path's sale (steps[4]) waits until four education emails followed the broadcast.
    assert order == [*steps[:4], "sale", *steps[5:9], steps[4], *steps[9:11]], order
    assert any(isinstance(e.action, Defer) and e.action.email.id == steps[4] for e in timeline.entries)
    # The path's last sale would now follow its deferred one too closely: skipped, said so.
    assert [e.action.email.id for e in timeline.entries if isinstance(e.action, Skip)] == [steps[11]]
    assert sale_at  # the first run only placed the moment


def _customer_at_its_sale(plan: Plan, broadcast_during: Stage | None) -> State:
    """Bought after nurture with a sale broadcast in it (marked as going `during` that stage),
    the sales path and three customer education emails: at the customer path's sale."""
    one = plan.segments[0]
    nurture = [Done(s.id, PathKind.NURTURE, s.role) for s in one.nurture.steps]
    done = (nurture[0], Done("sale", PathKind.BROADCAST, Role.SALE, during=broadcast_during),
            *nurture[1:4], *(Done(s.id, PathKind.SALES, s.role) for s in one.sales.steps),
            *(Done(s.id, PathKind.CUSTOMER, s.role) for s in one.customer.steps[:3]))
    return State(stage=Stage.CUSTOMER, since=NOW - 10 * DAY, segment="one", step=one.customer.steps[3].id,
                 last_sent_at=NOW - 3 * DAY, done=done)


def test_a_sale_broadcast_in_nurture_does_not_hold_back_a_customer_sale_months_later() -> None:
    """A broadcast takes a place in the window of the path the recipient walked when it went:
    the customer path's sale after three education emails of its own goes on time, though the
    nurture-era broadcast was the last broadcast they got (found by the property tests: it
    was deferred, and lost had the customer path ended first)."""
    plan = with_broadcasts(make_plan(segment("one", nurture="EEEE", customer="EEESE"), segment("two"),
                                     cap=parse_cap("5/day")),
                           broadcast("sale", when_ratio_breaks=RatioBreak.DEFER))
    sale = plan.segments[0].customer.steps[3]
    outcome = step(plan, _customer_at_its_sale(plan, Stage.NURTURE), _facts(), NOW)
    assert _sent(outcome.actions) == [sale.id]
    # A sale broadcast while they walk the customer path is in its window: the sale waits.
    during = step(plan, _customer_at_its_sale(plan, Stage.CUSTOMER), _facts(), NOW)
    assert [a.email.id for a in during.actions if isinstance(a, Defer)] == [sale.id]
    assert sale.id not in _sent(during.actions)  # the education email after it goes instead
    # One recorded before the stage was kept counts in every path's window, as it always did.
    unknown = step(plan, _customer_at_its_sale(plan, None), _facts(), NOW)
    assert [a.email.id for a in unknown.actions if isinstance(a, Defer)] == [sale.id]
    assert sale.id not in _sent(unknown.actions)


def test_simulate_takes_the_audience_at_the_broadcasts_first_moment_in_local_time() -> None:
    local_nine = datetime(2026, 1, 20, 9, 0)  # naive: each recipient's 09:00
    everyone = broadcast("news", role="E", at=local_nine, local=True)
    only_two = broadcast("pros", role="E", at=local_nine, local=True,
                         audience=Audience(segments=frozenset({"two"})))
    plan = with_broadcasts(_plan(), everyone, only_two)
    timeline = simulate(plan, Script(start=datetime(2026, 1, 5, tzinfo=UTC), timezone="Asia/Tokyo"))
    got = {e.action.email.id: e.at for e in timeline.sends() if e.action.email.path is PathKind.BROADCAST}
    assert got == {"news": datetime(2026, 1, 20, 0, 0, tzinfo=UTC)}  # 09:00 in Tokyo


def test_the_audience_conditions() -> None:
    state = State(stage=Stage.NURTURE, since=NOW - DAY, segment="one")
    facts = Facts(events=(Event(EventType.ANSWER, NOW - 9 * DAY, "level", "new"),
                          Event(EventType.PURCHASE, NOW - 5 * DAY, product="socks"),
                          Event(EventType.CLICK, NOW - 3 * DAY)))
    signed = NOW - 10 * DAY

    def ok(**conditions: object) -> bool:
        return matches(Audience(**conditions), state, facts, frozenset({"vip"}), signed, NOW)  # type: ignore[arg-type]

    assert ok()
    assert ok(segments=frozenset({"one"})) and not ok(segments=frozenset({"two"}))
    assert ok(stages=frozenset({"nurture"})) and not ok(stages=frozenset({"sales"}))
    assert ok(answers=(("level", frozenset({"new"})),)) and not ok(answers=(("level", frozenset({"pro"})),))
    assert ok(tags=frozenset({"vip"})) and not ok(tags=frozenset({"vip", "staff"}))
    assert not ok(without_tags=frozenset({"vip"}))
    assert ok(bought=frozenset()) and ok(bought=frozenset({"socks"})) and not ok(bought=frozenset({"course"}))
    assert not ok(not_bought=frozenset()) and ok(not_bought=frozenset({"course"}))
    assert ok(engaged_within=timedelta(days=4)) and not ok(engaged_within=timedelta(days=2))
    assert ok(signed_up_after=signed) and not ok(signed_up_before=signed)
