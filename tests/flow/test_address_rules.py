"""Rules about the address, decided by step(): a blocked address ends the enrollment; one
confirmation request per address a day, whatever the funnels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.flow import waits
from engine.flow.actions import End, Send
from engine.flow.explain import explain
from engine.flow.joining import CONFIRMATION_GAP
from engine.flow.simulate import Script, simulate
from engine.flow.state import Event, EventType, Facts, Stage
from engine.flow.step import start, step
from tests.flow.plans import make_plan

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
ANSWERED = (Event(EventType.CONFIRMED, T0), Event(EventType.ANSWER, T0, question="level", answer="new"))


def _sent(actions: tuple[object, ...]) -> list[str]:
    return [a.email.id for a in actions if isinstance(a, Send)]


def test_a_bounced_or_complained_address_ends_the_enrollment_whatever_it_waited_for() -> None:
    plan = make_plan()
    state = step(plan, start(plan, T0), Facts(events=ANSWERED), T0).state
    assert state.stage is Stage.NURTURE
    for status in ("bounced", "complained"):
        outcome = step(plan, state, Facts(events=ANSWERED, status=status), T0 + DAY)
        assert outcome.actions == (End(f"the address {status}"),)
        assert (outcome.state.stage, outcome.state.step, outcome.state.reason) == (
            Stage.ENDED, None, f"the address {status}")
        assert (outcome.wake_at, outcome.wait) == (None, waits.AddressBlocked(status))
        assert outcome.entered == ()  # no milestone: the tick never wrote one for this ending
        again = step(plan, outcome.state, Facts(status=status), T0 + 2 * DAY)
        assert (again.actions, again.wait) == ((), waits.Ended(f"the address {status}"))


def test_an_unsubscribed_status_is_no_block_the_event_ends_it() -> None:
    plan = make_plan()
    state = step(plan, start(plan, T0), Facts(events=ANSWERED), T0).state
    outcome = step(plan, state, Facts(events=ANSWERED, status="unsubscribed"), T0 + DAY)
    assert outcome.state.stage is Stage.NURTURE


def test_explain_says_a_blocked_address_ends_at_the_next_tick() -> None:
    plan = make_plan()
    state = step(plan, start(plan, T0), Facts(events=ANSWERED), T0).state
    found = explain(plan, state, Facts(events=ANSWERED, status="bounced"), T0 + DAY)
    assert (found.step, found.at) == (None, None)
    assert found.reason == "the address bounced: ends at the daemon's next tick"


def test_a_confirmation_waits_a_day_after_another_funnel_s_request() -> None:
    plan = make_plan()
    other = T0 - timedelta(hours=3)  # another funnel asked this address to confirm
    waiting = step(plan, start(plan, T0), Facts(confirmations=(other,)), T0)
    assert waiting.actions == ()
    assert waiting.wait == waits.ConfirmationGap(other, other + CONFIRMATION_GAP)
    assert waiting.wake_at == other + CONFIRMATION_GAP
    found = explain(plan, start(plan, T0), Facts(confirmations=(other,)), T0)
    assert found.step is not None and (found.step.id, found.at) == ("confirm", other + CONFIRMATION_GAP)
    assert found.reason == ("one confirmation request a day per address: the last went out at "
                            "Mon 2026-03-02 06:00 UTC, the next may go at Tue 2026-03-03 06:00 UTC")
    sent = step(plan, waiting.state, Facts(confirmations=(other,)), other + CONFIRMATION_GAP)
    assert _sent(sent.actions) == ["confirm"]
    assert step(plan, start(plan, T0), Facts(confirmations=(T0 - DAY,)), T0).actions != ()


def test_the_resent_request_waits_for_the_gap_too() -> None:
    plan = make_plan()
    first = step(plan, start(plan, T0), Facts(), T0)
    asked = Facts(events=(Event(EventType.SIGNED_UP_AGAIN, T0 + timedelta(hours=2)),),
                  confirmations=(T0, T0 + timedelta(hours=5)))  # the second: another funnel's
    waiting = step(plan, first.state, asked, T0 + DAY)
    assert waiting.wait == waits.ConfirmationGap(T0 + timedelta(hours=5), T0 + DAY + timedelta(hours=5))
    assert _sent(step(plan, first.state, asked, T0 + DAY + timedelta(hours=5)).actions) == ["confirm~again"]


def test_one_call_of_step_never_sends_two_requests() -> None:
    """After downtime, the first request and the resent one are both due: the second waits a day."""
    plan = make_plan()
    asked = Facts(events=(Event(EventType.SIGNED_UP_AGAIN, T0 + timedelta(hours=2)),))
    late = T0 + 2 * DAY
    outcome = step(plan, start(plan, T0), asked, late)
    assert _sent(outcome.actions) == ["confirm"]
    assert outcome.wait == waits.ConfirmationGap(late, late + CONFIRMATION_GAP)


def test_simulate_counts_its_requests_for_the_gap() -> None:
    plan = make_plan()
    # Signed up at 09:00 and again at 11:00 without confirming: the request goes once more a
    # day after the first, which simulate recorded as a confirmation of the address.
    script = Script(T0, events=(Event(EventType.SIGNED_UP_AGAIN, T0 + timedelta(hours=2)),
                                Event(EventType.CONFIRMED, T0 + 3 * DAY)), days=4)
    timeline = simulate(plan, script)
    requests = [(e.at, e.action.email.id) for e in timeline.entries
                if isinstance(e.action, Send) and e.action.email.id.startswith("confirm")]
    assert requests == [(T0, "confirm"), (T0 + DAY, "confirm~again")]
