"""Build small Plans in code for interpreter tests (no files, no templates)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.sequences.plan import (
    Audience,
    BroadcastPlan,
    EmailStep,
    MagnetPlan,
    PathKind,
    PathPlan,
    Plan,
    Question,
    RatioBreak,
    Role,
    Rule,
    SegmentPlan,
    SurveyPlan,
)
from engine.sequences.values import Ratio, parse_cap
from engine.sequences.window import FrequencyCap, SendWindow

ROLES = {"E": Role.EDUCATION, "S": Role.SALE}
FOUR_TO_ONE = Ratio(4, 1)


def path(kind: PathKind, segment: str, roles: str, spacing: timedelta,
         prefix: str = "", last_chance: bool = False) -> PathPlan:
    """'EEEESE' -> a path of those roles; step ids like 'one-nurture-0'."""
    steps = []
    for i, letter in enumerate(roles):
        steps.append(EmailStep(
            id=f"{prefix or segment}-{kind.value}-{i}", path=kind, segment=segment,
            role=ROLES[letter], subject=f"{kind.value} {i}", template="t.html", after=spacing,
            last_chance=last_chance and i == len(roles) - 1))
    return PathPlan(kind, tuple(steps))


def segment(seg_id: str, nurture: str = "EEEESE", sales: str = "SS", customer: str = "EEEES",
            spacing: timedelta = timedelta(days=2),
            exit_products: frozenset[str] | None = None) -> SegmentPlan:
    """A segment with paths of the given role letters."""
    return SegmentPlan(
        id=seg_id, name=seg_id.title(),
        nurture=path(PathKind.NURTURE, seg_id, nurture, spacing),
        sales=path(PathKind.SALES, seg_id, sales, spacing, last_chance=True),
        customer=path(PathKind.CUSTOMER, seg_id, customer, spacing),
        exit_products=exit_products)


def transactional(step_id: str, kind: PathKind) -> EmailStep:
    """A confirmation, magnet or survey email."""
    return EmailStep(step_id, kind, None, Role.TRANSACTIONAL, step_id, "t.html")


def survey(wait: timedelta = timedelta(days=3), after: timedelta = timedelta(0),
           default: str = "one") -> SurveyPlan:
    """One question 'level' with answers 'new' -> one and 'pro' -> two."""
    return SurveyPlan(
        email=transactional("survey", PathKind.SURVEY), after=after, wait=wait,
        default_segment=default,
        questions=(Question("level", "Your level?", (("new", "New"), ("pro", "Pro"))),),
        rules=(Rule((("level", frozenset({"new"})),), "one"),
               Rule((("level", frozenset({"pro"})),), "two")))


def make_plan(*segments: SegmentPlan, window: SendWindow | None = None,
              cap: FrequencyCap | None = None, ratio: Ratio = FOUR_TO_ONE,
              double_opt_in: bool = True, with_survey: bool = True,
              survey_plan: SurveyPlan | None = None) -> Plan:
    """A funnel with the given segments (default: 'one' and 'two')."""
    segs = segments or (segment("one"), segment("two"))
    return Plan(
        funnel="test", name="Test", source="test.yaml", sender="T <t@example.com>",
        reply_to=None, postal_address="1 Street", thank_you_url="https://example.com/t",
        allowed_origins=(), double_opt_in=double_opt_in,
        confirmation=transactional("confirm", PathKind.CONFIRM) if double_opt_in else None,
        confirmation_again=transactional("confirm~again", PathKind.CONFIRM) if double_opt_in else None,
        window=window, cap=cap or parse_cap("1/day"), ratio=ratio,
        magnets=(MagnetPlan("guide", "Guide", None, transactional("magnet", PathKind.MAGNET)),),
        survey=(survey_plan or survey()) if with_survey else None,
        segments=segs)


def broadcast(broadcast_id: str, role: str = "S", at: datetime | None = None, local: bool = False,
              audience: Audience | None = None, use_window: bool = True,
              when_ratio_breaks: RatioBreak = RatioBreak.SKIP) -> BroadcastPlan:
    """A broadcast of the 'test' funnel: `at` an instant (aware) or, `local`, a wall time (naive)."""
    email = EmailStep(broadcast_id, PathKind.BROADCAST, None, ROLES[role], broadcast_id, "b.html")
    when = at or datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
    return BroadcastPlan(id=broadcast_id, name=broadcast_id, funnel="test", source="b.yaml",
                         email=email, audience=audience or Audience(), at=when, local=local,
                         use_window=use_window, when_ratio_breaks=when_ratio_breaks)


def with_broadcasts(plan: Plan, *broadcasts: BroadcastPlan) -> Plan:
    """`plan` with these broadcasts, as the project attaches them."""
    return replace(plan, broadcasts=broadcasts)
