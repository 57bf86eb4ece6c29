"""Properties of every timeline, over generated funnels and event histories (hypothesis)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.flow.simulate import Script, ScriptedAnswer, Timeline, simulate
from engine.flow.state import Event, EventType
from engine.sequences.plan import PathKind, Plan, Role
from engine.sequences.values import Ratio
from engine.sequences.window import FrequencyCap, SendWindow, zone
from tests.flow.plans import make_plan, segment, survey

ZONES = ["UTC", "Europe/Budapest", "America/New_York", "Asia/Tokyo", "Asia/Kathmandu",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/Sao_Paulo"]
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


@st.composite
def ratios(draw: st.DrawFn) -> Ratio:
    return Ratio(draw(st.integers(1, 5)), draw(st.integers(1, 2)))


def roles_at(ratio: Ratio, wants: list[bool]) -> str:
    """A role string that obeys `ratio`: a sale only where the window has room for one."""
    letters: list[str] = []
    for want_sale in wants:
        recent = letters[-(ratio.window - 1):] if ratio.window > 1 else []
        fits = letters and recent.count("S") + 1 <= ratio.sale
        letters.append("S" if want_sale and fits else "E")
    return "".join(letters)


@st.composite
def windows(draw: st.DrawFn) -> SendWindow | None:
    if draw(st.booleans()):
        return None
    days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1)))
    start_hour = draw(st.integers(0, 22))
    end_hour = draw(st.integers(start_hour + 1, 23))
    minute = draw(st.sampled_from([0, 30]))
    return SendWindow(days, time(start_hour, minute), time(end_hour, 59), "generated")


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    ratio = draw(ratios())
    segments = []
    for seg_id in ("one", "two"):
        nurture = roles_at(ratio, draw(st.lists(st.booleans(), min_size=1, max_size=14)))
        customer = roles_at(ratio, draw(st.lists(st.booleans(), min_size=1, max_size=8)))
        sales = "S" * draw(st.integers(1, 4))
        spacing = draw(st.sampled_from([timedelta(hours=1), timedelta(hours=20), timedelta(days=1),
                                        timedelta(days=2), timedelta(days=4)]))
        products = draw(st.sampled_from([None, frozenset({"course"})]))
        segments.append(segment(seg_id, nurture=nurture, sales=sales, customer=customer,
                                spacing=spacing, exit_products=products))
    cap = FrequencyCap(draw(st.integers(1, 3)), draw(st.sampled_from(["day", "week"])))
    the_survey = survey(wait=draw(st.sampled_from([timedelta(hours=12), timedelta(days=3)])),
                        after=draw(st.sampled_from([timedelta(0), timedelta(hours=2)])))
    return make_plan(*segments, window=draw(windows()), cap=cap, ratio=ratio,
                     double_opt_in=draw(st.booleans()), survey_plan=the_survey)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    start = START + draw(st.integers(0, 365 * 24 * 60)) * timedelta(minutes=1)
    offsets = st.integers(0, 90 * 24).map(lambda h: timedelta(hours=h))
    answers = []
    if draw(st.booleans()):
        offset = draw(st.one_of(st.none(), offsets))
        answers.append(ScriptedAnswer("level", draw(st.sampled_from(["new", "pro"])), offset))
    events = []
    for _ in range(draw(st.integers(0, 2))):
        product = draw(st.sampled_from([None, "course", "socks"]))
        events.append(Event(EventType.PURCHASE, start + draw(offsets), product=product))
    if draw(st.integers(0, 4)) == 0:
        events.append(Event(EventType.UNSUBSCRIBE, start + draw(offsets)))
    return Script(start=start, timezone=draw(st.sampled_from(ZONES)), answers=tuple(answers),
                  events=tuple(events), days=120)


def _by_path(timeline: Timeline, kind: PathKind) -> list[Role]:
    return [e.action.email.role for e in timeline.sends() if e.action.email.path is kind]




@given(plans(), scripts())
def test_the_ratio_holds_in_every_nurture_and_customer_timeline(plan: Plan, script: Script) -> None:
    timeline = simulate(plan, script)
    for kind in (PathKind.NURTURE, PathKind.CUSTOMER):
        roles = _by_path(timeline, kind)
        if roles:
            assert roles[0] is Role.EDUCATION
        for i in range(len(roles)):
            window = roles[max(0, i - plan.ratio.window + 1): i + 1]
            assert window.count(Role.SALE) <= plan.ratio.sale, (kind, roles)


@given(plans(), scripts())
def test_no_email_is_emitted_twice(plan: Plan, script: Script) -> None:
    ids = [e.action.email.id for e in simulate(plan, script).sends()]
    assert len(ids) == len(set(ids))


@given(plans(), scripts())
def test_nothing_from_a_sales_path_after_a_purchase_that_ends_it(plan: Plan, script: Script) -> None:
    timeline = simulate(plan, script)
    for entry in timeline.sends():
        email = entry.action.email
        if email.path is not PathKind.SALES:
            continue
        segment = plan.segment(entry.segment)
        assert segment is not None
        ending = [e.at for e in script.events if e.type is EventType.PURCHASE
                  and segment.ends_sales(e.product)]
        assert all(entry.at < at for at in ending), (entry, ending)


@given(plans(), scripts())
def test_every_marketing_email_falls_inside_the_send_window(plan: Plan, script: Script) -> None:
    for entry in simulate(plan, script).sends():
        if entry.action.email.marketing and plan.window is not None:
            assert plan.window.contains(entry.at, script.timezone), (
                entry.at.astimezone(zone(script.timezone)), plan.window)


@given(plans(), scripts())
def test_the_frequency_cap_holds_and_nothing_follows_an_unsubscribe(plan: Plan,
                                                                   script: Script) -> None:
    sends = simulate(plan, script).sends()
    tz = zone(script.timezone)
    periods: Counter[object] = Counter()
    for entry in sends:
        if entry.action.email.marketing:
            local = entry.at.astimezone(tz).date()
            key = local.isocalendar()[:2] if plan.cap.period == "week" else local
            periods[key] += 1
    assert all(count <= plan.cap.limit for count in periods.values())
    stops = [e.at for e in script.events if e.type is EventType.UNSUBSCRIBE]
    if stops:
        assert all(entry.at < min(stops) for entry in sends)
    times = [entry.at for entry in sends]
    assert times == sorted(times)
