"""The funnel map's contents: every place of a funnel a subscriber can be at, in the sequence
file's order, with how many stand there now and each email's numbers.

The places come from the compiled Plan (magnets, confirmation, survey, segments with their
nurture, sales and customer paths, win-back and sunset); the people from one GROUP BY over
the enrollments (`engine.store.reports.positions`, the count `funnel validate --against-db`
reads too); the email numbers from the stats report's steps, so that a rate on the map is
the rate the funnel page and `funnel stats` show. Drawing is the dashboard's
(engine/web/dashboard/funnel_map.py); this module decides who is where.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.flow.state import Stage
from engine.sequences.plan import EmailStep, PathKind, Plan
from engine.sequences.values import format_delay
from engine.store.db import DbEngine, snapshot
from engine.store.pauses import pauses
from engine.store.reports import positions
from engine.store.stepstats import StepCounts, step_counts


class Kind(StrEnum):
    """What a place of the map is; the drawing gives each its own shape."""

    SIGNUP = "signup"  # a lead magnet's form: who signed up through it
    EMAIL = "email"
    WAIT = "wait"  # the survey sent, its answer awaited
    SEGMENT = "segment"
    END = "end"  # sales over without a purchase, sunset, left the funnel


class Band(StrEnum):
    """The horizontal bands of the map, top to bottom."""

    ENTRY = "entry"  # magnets, confirmation, the magnets' emails, the survey
    SEGMENTS = "segments"
    NURTURE = "nurture"
    SALES = "sales"
    CUSTOMER = "customer"
    WINBACK = "winback"
    ENDED = "ended"


@dataclass(frozen=True)
class Place:
    """One node of the map: where `waiting` enrollments stand now."""

    key: str  # unique on the map: an email's step id, or 'kind:...' for the others
    kind: Kind
    band: Band
    label: str
    lane: str | None = None  # the segment whose column it stands in; None: across the map
    waiting: int = 0
    # What `waiting` means here, in words, for the hover text and the table.
    waiting_means: str = ""
    email: EmailStep | None = None
    numbers: Mapping[str, Any] = field(default_factory=dict, hash=False)  # the report's step row


@dataclass(frozen=True)
class Edge:
    """Who goes from one place to the next; `purchase` edges are taken on a purchase only."""

    source: str
    target: str
    purchase: bool = False


@dataclass(frozen=True)
class FunnelMap:
    """A funnel's map: its places in order, the edges, and who stands nowhere on it."""

    funnel: str
    name: str
    lanes: tuple[tuple[str, str], ...]  # (segment id, name) in file order
    places: tuple[Place, ...]
    edges: tuple[Edge, ...]
    # Enrollments the file no longer has a place for (a removed step or segment), by reason.
    elsewhere: tuple[tuple[str, int], ...] = ()
    # Each band's heading on the map, in order (the entry and segment bands have none).
    headings: tuple[tuple[Band, str], ...] = ()

    @property
    def total(self) -> int:
        """Every enrollment counted once: on a place, or elsewhere."""
        # The forms and the segments count people who also stand at a place below them.
        placed = sum(p.waiting for p in self.places if p.kind not in (Kind.SIGNUP, Kind.SEGMENT))
        return placed + sum(n for _, n in self.elsewhere)


# The stages whose enrollments stand at an email of a path, by that email's step id.
_PATH_STAGES = {Stage.NURTURE.value, Stage.SALES.value, Stage.CUSTOMER.value, Stage.WINBACK.value}
# The stages that count as being "in" a segment now, for the segment's own node.
_IN_SEGMENT = {Stage.NURTURE.value, Stage.SALES.value, Stage.SALES_DONE.value, Stage.CUSTOMER.value}
SIGNUP, ANSWERING, SALES_DONE, SUNSET, ENDED, SEGMENT = (
    "signup:",
    "wait:answering",
    "end:sales_done:",
    "end:sunset",
    "end:ended",
    "segment:",
)


def funnel_map(
    plan: Plan, positions: Iterable[Mapping[str, Any]], steps: Iterable[Mapping[str, Any]]
) -> FunnelMap:
    """The map of `plan` with the people of `positions` (rows of reports.positions for this
    funnel: stage, segment, step, magnet, count) and the numbers of `steps` (the report's step rows)."""
    numbers = {row["step"]: row for row in steps}
    counted = _Counter(plan)
    for row in positions:
        counted.add(str(row["stage"]), row["segment"], row["step"], row["magnet"], int(row["count"]))
    places: list[Place] = []
    edges: list[Edge] = []

    def email(step: EmailStep, band: Band, lane: str | None, means: str) -> Place:
        return Place(
            step.id,
            Kind.EMAIL,
            band,
            step.id,
            lane,
            counted.at.get(step.id, 0),
            means,
            step,
            numbers.get(step.id, {}),
        )

    # Entry: one signup place per magnet, the confirmation, each magnet's email, the survey.
    signups = [
        Place(
            SIGNUP + m.id,
            Kind.SIGNUP,
            Band.ENTRY,
            m.title,
            waiting=counted.magnets.get(m.id, 0),
            waiting_means="signed up through this magnet (everyone enrolled now)",
        )
        for m in plan.magnets
    ]
    places += signups
    heads = [p.key for p in signups]
    if plan.confirmation:
        places.append(email(plan.confirmation, Band.ENTRY, None, "asked to confirm; not clicked yet"))
        if plan.confirmation_again:  # the same request once more, to whoever signs up again
            places.append(
                email(
                    plan.confirmation_again,
                    Band.ENTRY,
                    None,
                    "nobody waits for it: it goes when an unconfirmed person signs up again",
                )
            )
        edges += [Edge(h, plan.confirmation.id) for h in heads]
        heads = [plan.confirmation.id]
    delivered = []
    for magnet, signup in zip(plan.magnets, signups, strict=True):
        places.append(
            Place(
                magnet.email.id,
                Kind.EMAIL,
                Band.ENTRY,
                magnet.email.id,
                None,
                counted.magnet_due.get(magnet.id, 0),
                "confirmed; the magnet goes out next",
                magnet.email,
                numbers.get(magnet.email.id, {}),
            )
        )
        edges.append(Edge(heads[0] if plan.confirmation else signup.key, magnet.email.id))
        delivered.append(magnet.email.id)
    heads = delivered
    if plan.survey:
        survey = plan.survey
        places.append(email(survey.email, Band.ENTRY, None, "due to receive the survey"))
        edges += [Edge(h, survey.email.id) for h in heads]
        places.append(
            Place(
                ANSWERING,
                Kind.WAIT,
                Band.ENTRY,
                "Waiting for an answer",
                waiting=counted.stages.get(Stage.ANSWERING.value, 0),
                waiting_means=f"sent the survey; the default segment after {format_delay(survey.wait)}",
            )
        )
        edges.append(Edge(survey.email.id, ANSWERING))
        heads = [ANSWERING]

    # Each segment: its column, nurture, sales (and the end of sales), the customer path.
    for segment in plan.segments:
        key = SEGMENT + segment.id
        places.append(
            Place(
                key,
                Kind.SEGMENT,
                Band.SEGMENTS,
                segment.name,
                segment.id,
                counted.segments.get(segment.id, 0),
                "in this segment's nurture, sales or customer path now",
            )
        )
        edges += [Edge(h, key) for h in heads]
        last = key
        for band, kind, means in (
            (Band.NURTURE, PathKind.NURTURE, "next to receive this email"),
            (Band.SALES, PathKind.SALES, "next to receive this email"),
        ):
            for step in segment.path(kind).steps:
                places.append(email(step, band, segment.id, means))
                edges.append(Edge(last, step.id))
                last = step.id
        done = SALES_DONE + segment.id
        places.append(
            Place(
                done,
                Kind.END,
                Band.SALES,
                "Sales over, no purchase",
                segment.id,
                counted.sales_done.get(segment.id, 0),
                "had every sales email and bought nothing (a purchase still counts)",
            )
        )
        edges.append(Edge(last, done))
        last = ""
        for step in segment.customer.steps:
            places.append(email(step, Band.CUSTOMER, segment.id, "next to receive this email"))
            if last:
                edges.append(Edge(last, step.id))
            else:
                edges += [Edge(s.id, step.id, purchase=True) for s in segment.sales.steps[:1]]
            last = step.id

    if plan.winback:
        last = ""
        for step in plan.winback.path.steps:
            places.append(email(step, Band.WINBACK, None, "idle; next to receive this win-back email"))
            if last:
                edges.append(Edge(last, step.id))
            last = step.id
        quiet = format_delay(plan.winback.sunset_after)
        places.append(
            Place(
                SUNSET,
                Kind.END,
                Band.WINBACK,
                "Sunset",
                waiting=counted.stages.get(Stage.SUNSET.value, 0),
                waiting_means=f"no click within {quiet} of the win-back emails: no more marketing email",
            )
        )
        if last:
            edges.append(Edge(last, SUNSET))
    places.append(
        Place(
            ENDED,
            Kind.END,
            Band.ENDED,
            "Left the funnel",
            waiting=counted.stages.get(Stage.ENDED.value, 0),
            waiting_means="unsubscribed, bounced, or at the end of the customer path",
        )
    )
    lanes = tuple((s.id, s.name) for s in plan.segments)
    return FunnelMap(
        plan.funnel,
        plan.name,
        lanes,
        tuple(places),
        tuple(edges),
        tuple(sorted(counted.elsewhere.items())),
        _headings(plan),
    )


def _headings(plan: Plan) -> tuple[tuple[Band, str], ...]:
    """What each band of the map is, in a marketer's words."""
    found = [
        (Band.NURTURE, f"Nurture: teaching, {plan.ratio} education to sale"),
        (Band.SALES, "Sales: the offer, until a purchase"),
        (Band.CUSTOMER, "Customers: after a purchase (it ends sales at once)"),
    ]
    if plan.winback:
        found.append(
            (
                Band.WINBACK,
                f"Win-back: from any path, after {format_delay(plan.winback.after)} without an open or click",
            )
        )
    return tuple(found)


class _Counter:
    """Adds up the position rows onto the places they belong to."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.at: dict[str, int] = {}  # step id -> enrollments standing at it
        self.magnets: dict[str, int] = {}
        self.magnet_due: dict[str, int] = {}
        self.stages: dict[str, int] = {}
        self.segments: dict[str, int] = {}
        self.sales_done: dict[str, int] = {}
        self.elsewhere: dict[str, int] = {}
        self._path_steps = {e.id for e in plan.emails()}

    def add(self, stage: str, segment: str | None, step: str | None, magnet: str | None, n: int) -> None:
        """`n` enrollments at (stage, segment, step) who came through `magnet`."""
        plan = self.plan
        known = plan.segment(segment)
        magnet_id = plan.magnet(magnet).id  # an unknown or missing magnet: the default, as signup does
        _add(self.magnets, magnet_id, n)
        if stage in _IN_SEGMENT and known is not None:
            _add(self.segments, known.id, n)
        if stage == Stage.CONFIRMING.value and plan.confirmation:
            _add(self.at, plan.confirmation.id, n)
        elif stage == Stage.MAGNET.value:
            _add(self.magnet_due, magnet_id, n)
        elif stage == Stage.SURVEY.value and plan.survey:
            _add(self.at, plan.survey.email.id, n)
        elif stage in (Stage.ANSWERING.value, Stage.SUNSET.value, Stage.ENDED.value):
            _add(self.stages, stage, n)
        elif stage == Stage.SALES_DONE.value and known is not None:
            _add(self.sales_done, known.id, n)
        elif stage in _PATH_STAGES and step is not None and step in self._path_steps:
            _add(self.at, step, n)
        elif stage in _PATH_STAGES and step is None:
            # Between two paths (the last email of one sent, the next path chosen at the next tick).
            _add(self.elsewhere, f"moving on from the {stage} path", n)
        else:
            _add(self.elsewhere, _why_elsewhere(stage, segment, step, known is not None), n)


def _why_elsewhere(stage: str, segment: str | None, step: str | None, segment_known: bool) -> str:
    if step is not None and stage in _PATH_STAGES:
        return f"at step '{step}', no longer in the file"
    if not segment_known and stage in _IN_SEGMENT:
        return f"in segment '{segment}', no longer in the file"
    return f"at stage '{stage}'"


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def read_map(db_engine: DbEngine, plan: Plan) -> FunnelMap:
    """The map of `plan` with who stands where now and every email's numbers, read from one snapshot.

    The positions are one GROUP BY over the funnel's enrollments, which the index
    `ix_enrollment_position` covers (migration 0007); the numbers are the stats report's
    (`StepCounts.as_dict`, as `funnel stats` shows them), read without the rest of the report:
    its stage, source and product counts, which the map does not show, took as long again
    (0.15-0.3 s of 0.5 at a million on SQLite).
    """
    with snapshot(db_engine) as conn:
        counts = {c.step: c for c in step_counts(conn, plan.funnel)}
        held = {p["step"]: p["detail"] for p in pauses(conn, plan.funnel) if p["resumed_at"] is None}
        standing = [dict(row) for row in positions(conn, [plan.funnel])]
    steps = [
        {
            **counts.get(e.id, StepCounts(plan.funnel, e.id)).as_dict(),
            "paused": e.id in held,
            "paused_detail": held.get(e.id),
        }
        for e in plan.emails()
    ]
    return funnel_map(plan, standing, steps)
