"""The compiled form of a funnel: immutable, fast to look up, and all the interpreter sees."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum
from functools import cached_property

from engine.sequences.languages import choose
from engine.sequences.values import Ratio
from engine.sequences.window import FrequencyCap, SendWindow, zone


class Role(StrEnum):
    """What an email is for; the ratio rule counts education against sale."""

    EDUCATION = "education"
    SALE = "sale"
    TRANSACTIONAL = "transactional"


class PathKind(StrEnum):
    """Where in the funnel an email belongs."""

    CONFIRM = "confirm"
    MAGNET = "magnet"
    SURVEY = "survey"
    NURTURE = "nurture"
    SALES = "sales"
    CUSTOMER = "customer"
    WINBACK = "winback"
    BROADCAST = "broadcast"  # a one-off email from broadcasts/ (docs/broadcasts.md)


# The step id of the resent confirmation: the confirmation's id and this suffix.
AGAIN_SUFFIX = "~again"


@dataclass(frozen=True)
class Variant:
    """One version of an email in an experiment: its own subject, its own template, or both."""

    id: str
    subject: str
    template: str


@dataclass(frozen=True)
class ExperimentPlan:
    """How an email's variants are tried and a winner kept (docs/experiments.md)."""

    metric: str  # clicks | purchases: engine.flow.experiment.Metric's values
    min_sends: int = 100  # per variant, before any adapting or stopping
    confidence: float = 0.99  # stop when one variant is best with at least this probability
    max_sends: int | None = None  # in total: then keep the best so far
    winner: str | None = None  # the file names the winner: everyone gets it
    # A broadcast's test: this share of the audience gets the variants (evenly), the rest get
    # the winner, chosen `decide_after` after the broadcast's time. None: a sequence step's
    # test, which keeps allocating while subscribers flow through.
    sample: float | None = None
    decide_after: timedelta = timedelta(hours=4)
    attribution: timedelta = timedelta(days=7)  # a purchase within this long after the email counts


@dataclass(frozen=True)
class EmailStep:
    """One email a subscriber can be at, with its stable id."""

    id: str
    path: PathKind
    segment: str | None
    role: Role
    subject: str
    template: str
    after: timedelta = timedelta(0)
    last_chance: bool = False
    # Sent as soon as it is due: outside the send window and over the frequency cap.
    anytime: bool = False
    # Sent also to those already past it when it was inserted behind them (engine/flow/position.py).
    send_to_passed: bool = False
    # An experiment's versions of this email (none: it has one version) and its rule.
    variants: tuple[Variant, ...] = ()
    experiment: ExperimentPlan | None = None

    def as_variant(self, variant_id: str | None) -> EmailStep:
        """This email as `variant_id` renders it: that variant's subject and template (the email
        itself when it has no such variant, or none is named)."""
        return self if variant_id is None else self._versions.get(variant_id, self)

    @cached_property
    def _versions(self) -> dict[str, EmailStep]:
        # Made once per email of a release, not once per message composed.
        return {v.id: replace(self, subject=v.subject, template=v.template) for v in self.variants}

    @property
    def marketing(self) -> bool:
        """Marketing mail obeys send windows, caps and the ratio; transactional mail does not."""
        return self.role is not Role.TRANSACTIONAL


@dataclass(frozen=True)
class PathPlan:
    """The ordered emails of one path of one segment."""

    kind: PathKind
    steps: tuple[EmailStep, ...]

    def index(self, step_id: str) -> int | None:
        """The position of `step_id` in this path, or None if it is not (or no longer) here."""
        return self._positions.get(step_id)

    @cached_property
    def _positions(self) -> dict[str, int]:
        # step() asks several times an email (the subscriber's position, the next email).
        # Reversed, so that the first of two equal ids wins, as a scan from the front finds it.
        return {email.id: i for i, email in reversed(list(enumerate(self.steps)))}


@dataclass(frozen=True)
class SegmentPlan:
    """A segment's three paths and which purchases end its sales path."""

    id: str
    name: str
    nurture: PathPlan
    sales: PathPlan
    customer: PathPlan
    exit_products: frozenset[str] | None = None  # None: any purchase

    def path(self, kind: PathKind) -> PathPlan:
        """The nurture, sales or customer path."""
        # Not a dict built per call: step() asks at every move of a path.
        if kind is PathKind.NURTURE:
            return self.nurture
        if kind is PathKind.SALES:
            return self.sales
        if kind is PathKind.CUSTOMER:
            return self.customer
        raise KeyError(kind)

    def ends_sales(self, product: str | None) -> bool:
        """Whether a purchase of `product` ends this segment's sales path."""
        return self.exit_products is None or product in self.exit_products


@dataclass(frozen=True)
class Rule:
    """All of `when` (question -> accepted answers) must hold for `segment` to apply."""

    when: tuple[tuple[str, frozenset[str]], ...]
    segment: str

    def matches(self, answers: Mapping[str, str]) -> bool:
        """True when every question of the rule has one of its accepted answers."""
        return all(answers.get(q) in accepted for q, accepted in self.when)


@dataclass(frozen=True)
class Question:
    """A survey question and its (id, label) answers."""

    id: str
    text: str
    answers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SurveyPlan:
    """The survey email, its questions and how answers become a segment."""

    email: EmailStep
    after: timedelta
    wait: timedelta
    default_segment: str
    questions: tuple[Question, ...]
    rules: tuple[Rule, ...]

    def complete(self, answers: Mapping[str, str]) -> bool:
        """True when every question has an answer."""
        return all(q.id in answers for q in self.questions)

    def decide(self, answers: Mapping[str, str]) -> str:
        """The segment for these answers: the first matching rule, else the default."""
        for rule in self.rules:
            if rule.matches(answers):
                return rule.segment
        return self.default_segment


@dataclass(frozen=True)
class MagnetPlan:
    """A lead magnet and the email that delivers it."""

    id: str
    title: str
    download_url: str | None
    email: EmailStep


@dataclass(frozen=True)
class GuardrailPlan:
    """Thresholds that pause a step: rates over its sends (None: never), after `min_sends`."""

    min_sends: int = 200
    unsubscribes: float | None = 0.02
    bounces: float | None = 0.05
    complaints: float | None = 0.001


@dataclass(frozen=True)
class WinbackPlan:
    """The win-back emails, when they start and when a subscriber who did not click is sunset."""

    after: timedelta
    sunset_after: timedelta
    path: PathPlan


class RatioBreak(StrEnum):
    """What a sale broadcast does where it would break the ratio for a recipient."""

    SKIP = "skip"  # they do not get the broadcast
    DEFER = "defer"  # they get it; their next sequence sale waits until the ratio allows it


@dataclass(frozen=True)
class Audience:
    """Who of a funnel's enrollments a broadcast goes to: every condition given must hold.

    A condition left at its default does not narrow the audience. The unsubscribed, the
    suppressed, the unconfirmed and those in win-back or sunset are always left out
    (engine/flow/broadcasts.py), whatever these say.
    """

    segments: frozenset[str] | None = None  # in one of these segments
    stages: frozenset[str] | None = None  # at one of these stages (engine.flow.state.Stage values)
    # question -> accepted answers: their latest answer to each question is one of these
    answers: tuple[tuple[str, frozenset[str]], ...] = ()
    tags: frozenset[str] = frozenset()  # has every one of these tags
    without_tags: frozenset[str] = frozenset()  # has none of these tags
    # bought one of these products; the empty set: bought anything
    bought: frozenset[str] | None = None
    # bought none of these products; the empty set: never bought anything
    not_bought: frozenset[str] | None = None
    engaged_within: timedelta | None = None  # opened or clicked an email within this long
    signed_up_after: datetime | None = None  # the enrollment began at or after (UTC)
    signed_up_before: datetime | None = None  # the enrollment began before (UTC)


@dataclass(frozen=True)
class BroadcastPlan:
    """A compiled broadcast: one email to an audience of one funnel, at one time."""

    id: str
    name: str
    funnel: str
    source: str  # the broadcast file, as errors show it
    email: EmailStep  # path BROADCAST; its id is the broadcast's id
    audience: Audience
    # `local`: `at` is a wall-clock time (naive) in each recipient's own time zone;
    # otherwise one instant (aware, UTC).
    at: datetime
    local: bool
    use_window: bool = True  # inside the funnel's send window
    when_ratio_breaks: RatioBreak = RatioBreak.SKIP
    attribution: timedelta = timedelta(days=7)  # a purchase within this long counts for it

    def due_at(self, timezone: str) -> datetime:
        """When it goes to a recipient in `timezone` (UTC); a local time that a DST gap
        skips goes at the same wall time shifted by the gap, as zoneinfo resolves it."""
        if not self.local:
            return self.at
        return self.at.replace(tzinfo=zone(timezone)).astimezone(UTC)

    def first_due(self) -> datetime:
        """The earliest moment it goes to anyone: `at` in the easternmost zone (UTC+14)."""
        return self.at.replace(tzinfo=UTC) - timedelta(hours=14) if self.local else self.at

    def last_due(self) -> datetime:
        """The latest moment it goes to anyone: `at` in the westernmost zone (UTC-12)."""
        return self.at.replace(tzinfo=UTC) + timedelta(hours=12) if self.local else self.at

    @property
    def when(self) -> str:
        """'2026-12-10 09:00 each recipient's local time', or the one instant in UTC."""
        if self.local:
            return f"{self.at:%Y-%m-%d %H:%M} each recipient's local time"
        return f"{self.at:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Plan:
    """A compiled funnel."""

    funnel: str
    name: str
    source: str
    sender: str
    reply_to: str | None
    postal_address: str
    thank_you_url: str
    allowed_origins: tuple[str, ...]
    double_opt_in: bool
    confirmation: EmailStep | None
    window: SendWindow | None
    cap: FrequencyCap
    ratio: Ratio
    magnets: tuple[MagnetPlan, ...]
    survey: SurveyPlan | None
    segments: tuple[SegmentPlan, ...]
    vars: Mapping[str, str | int | float | bool] = field(default_factory=dict, hash=False)
    default_magnet: str | None = None
    allowed_redirects: tuple[str, ...] = ()
    consent_text: str | None = None
    # The confirmation sent once more when the person signs up again (docs/interpreter.md).
    confirmation_again: EmailStep | None = None
    guardrails: GuardrailPlan = GuardrailPlan()
    winback: WinbackPlan | None = None
    # Product id -> the segment whose customer path a purchase of it starts.
    products: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The broadcasts (broadcasts/*.yaml) that go to this funnel's people, in file order.
    broadcasts: tuple[BroadcastPlan, ...] = ()
    # The language this plan's texts and templates are in, and the funnel's languages, the
    # default first (docs/languages.md); None and () when the file declares none.
    language: str | None = None
    languages: tuple[str, ...] = ()
    # The same funnel in each further language: same steps and ids, that language's subjects,
    # titles and labels, and its templates under templates/<language>/.
    translations: tuple[Plan, ...] = field(default=(), hash=False, compare=False, repr=False)

    def in_language(self, locale: str | None) -> Plan:
        """The funnel as a subscriber whose locale is `locale` reads it: the language matching it
        (exact tag, then primary language: pt-BR reads pt), else the default (this plan)."""
        language = choose(locale, self.languages)
        if language is None or language == self.language:
            return self
        found = self._in_languages.get(language)
        return self if found is None else found

    @cached_property
    def _in_languages(self) -> dict[str, Plan]:
        # The broadcasts are attached to the default plan after compiling (project/folder.py):
        # a translation serves them as written, in the default language.
        return {p.language: replace(p, broadcasts=self.broadcasts) if self.broadcasts else p
                for p in self.translations if p.language is not None}

    def customer_segment(self, segment: SegmentPlan, product: str | None) -> tuple[SegmentPlan, str]:
        """The segment whose customer path a purchase of `product` starts, and why.

        A product the funnel names goes to its segment's customer path; any other (or one
        whose segment has no customer emails) to the buyer's own segment's.
        """
        named = self.segment(self.products.get(product or ""))
        if named is not None and named.customer.steps:
            return named, f"bought '{product}' (products: segment '{named.id}')"
        what = f"bought '{product}'" if product else "purchase"
        return segment, f"{what} (segment '{segment.id}')"

    def consent_wording(self, magnet_id: str | None) -> str:
        """The consent sentence a form for `magnet_id` shows, kept with every signup."""
        if self.consent_text:
            return self.consent_text
        title = self.magnet(magnet_id).title
        return f"Send me “{title}” and emails from {self.name}. Unsubscribe at any time."

    @property
    def default_segment(self) -> str:
        """The segment of a subscriber who never answers (or of every one, with no survey)."""
        return self.survey.default_segment if self.survey else self.segments[0].id

    def segment(self, segment_id: str | None) -> SegmentPlan | None:
        """The segment with this id, if the funnel (still) has it."""
        return self._segments.get(segment_id) if segment_id is not None else None

    @cached_property
    def _segments(self) -> dict[str, SegmentPlan]:
        # Looked up several times for every enrollment step() advances.
        return {s.id: s for s in reversed(self.segments)}  # the first of two equal ids wins

    def magnet(self, magnet_id: str | None) -> MagnetPlan:
        """The magnet with this id; the default one when the id is missing or unknown."""
        default = next((m for m in self.magnets if m.id == self.default_magnet), self.magnets[0])
        return next((m for m in self.magnets if m.id == magnet_id), default)

    def emails(self) -> Iterator[EmailStep]:
        """Every email of the funnel, in file order."""
        if self.confirmation:
            yield self.confirmation
        if self.confirmation_again:
            yield self.confirmation_again
        for magnet in self.magnets:
            yield magnet.email
        if self.survey:
            yield self.survey.email
        for segment in self.segments:
            for kind in (PathKind.NURTURE, PathKind.SALES, PathKind.CUSTOMER):
                yield from segment.path(kind).steps
        if self.winback:
            yield from self.winback.path.steps
        for broadcast in self.broadcasts:
            yield broadcast.email

    def broadcast(self, broadcast_id: str | None) -> BroadcastPlan | None:
        """The broadcast with this id, if the release has it."""
        return self._broadcasts_by_id.get(broadcast_id) if broadcast_id is not None else None

    @cached_property
    def _broadcasts_by_id(self) -> dict[str, BroadcastPlan]:
        # step() asks for each pending broadcast of each recipient it decides
        return {b.id: b for b in self.broadcasts}

    @cached_property
    def sender_parts(self) -> tuple[str, str]:
        """(display name, address) of the sender, parsed once."""
        return parseaddr(self.sender)

    @cached_property
    def _by_id(self) -> dict[str, EmailStep]:
        return {e.id: e for e in self.emails()}

    @property
    def email_count(self) -> int:
        """How many emails the funnel has (bounds the interpreter's moves)."""
        return len(self._by_id)

    def email(self, step_id: str) -> EmailStep | None:
        """The email with this step id, if any."""
        return self._by_id.get(step_id)

    def as_read(self, step_id: str, locale: str | None, variant: str | None) -> tuple[Plan, EmailStep] | None:
        """Email `step_id` as the subscriber reads it: in the language their `locale` matches (that
        language's plan, for its texts, and its subject and template), then as the experiment's
        `variant` they were given. None when the funnel has no such email. The one rule for
        sending, previewing and showing a subscriber's emails (docs/languages.md)."""
        written = self.in_language(locale)
        email = written.email(step_id)
        return None if email is None else (written, email.as_variant(variant))
