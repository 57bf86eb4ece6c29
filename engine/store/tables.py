"""The tables (SQLModel): subscribers, consent, tags, enrollments, events, deliveries, suppressions.

Times are stored as UTC. The hot paths (claiming, marking) use the Core `Table`
objects exported at the bottom through `engine.store.queries`, not ORM objects:
claiming and marking 500 rows costs ~32 ms with Core statements against ~170 ms
with ORM objects on SQLite here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from engine.flow.status import SubscriberStatus
from engine.store.status import DeliveryStatus


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite keeps no zone: it is added back on read)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Store in UTC; a naive datetime is a bug, not something to guess about."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Read back as aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc() -> UtcDateTime:
    return UtcDateTime()


class Subscriber(SQLModel, table=True):
    """A person on the list, once per address (case-insensitively)."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)  # as given, domain lowercased
    email_key: str = Field(max_length=320, unique=True)  # lowercased: the identity
    name: str = Field(default="", max_length=200)
    # As the person gave them (a form's first_name/last_name fields, a CSV column, the API);
    # None: not given, and templates fall back to what is safe to take from `name`.
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    locale: str = Field(default="en", max_length=35)
    timezone: str = Field(default="UTC", max_length=64)
    status: str = Field(default=SubscriberStatus.ACTIVE.value, max_length=20)  # a SubscriberStatus
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: str | None = Field(default=None, max_length=200)
    utm_source: str | None = Field(default=None, max_length=200)
    utm_medium: str | None = Field(default=None, max_length=200)
    utm_campaign: str | None = Field(default=None, max_length=200)
    utm_term: str | None = Field(default=None, max_length=200)
    utm_content: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=_utc())
    updated_at: datetime = Field(sa_type=_utc())


class Consent(SQLModel, table=True):
    """Proof of a signup, confirmation or import: when, from where, and the wording shown."""

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=20)  # signup|confirm|import
    at: datetime = Field(sa_type=_utc())
    funnel: str | None = Field(default=None, max_length=100)
    form: str | None = Field(default=None, max_length=200)
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=500)
    wording: str | None = Field(default=None, max_length=2000)


class Tag(SQLModel, table=True):
    """A label on a subscriber."""

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, ondelete="CASCADE")
    name: str = Field(primary_key=True, max_length=100)
    at: datetime = Field(sa_type=_utc())


class Enrollment(SQLModel, table=True):
    """One subscriber's position in one funnel: the interpreter's State as a row."""

    __table_args__ = (
        sa.UniqueConstraint("subscriber_id", "funnel", name="uq_enrollment_subscriber_funnel"),
        # A stats read with --since recounts the hours of its first day from here, and a
        # broadcast's audience is counted from it alone (0006: it covers what the audience
        # reads of an enrollment, so a million are counted without reading their rows).
        sa.Index("ix_enrollment_audience", "funnel", "created_at", "stage", "segment", "subscriber_id",
                 "reached"),
        # Who stands where, for the funnel map: a GROUP BY read from the index alone (0007).
        sa.Index("ix_enrollment_position", "funnel", "stage", "segment", "step", "magnet"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    funnel: str = Field(max_length=100, index=True)
    magnet: str | None = Field(default=None, max_length=100)
    stage: str = Field(max_length=20)
    since: datetime = Field(sa_type=_utc())
    segment: str | None = Field(default=None, max_length=100)
    step: str | None = Field(default=None, max_length=100)
    last_sent_at: datetime | None = Field(default=None, sa_type=_utc())
    deadline: datetime | None = Field(default=None, sa_type=_utc())
    done: list[list[Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reason: str | None = Field(default=None, max_length=300)
    resume_stage: str | None = Field(default=None, max_length=20)  # win-back: where a click returns them
    resume_step: str | None = Field(default=None, max_length=100)
    # When the tick should look at this row next; NULL: only an event wakes it.
    next_run_at: datetime | None = Field(default=None, index=True, sa_type=_utc())
    # The stages and deeds it reached, as tally_sql.REACHED's bits: kept by database triggers
    # from its milestones and events, for the stats tallies. Never written by the engine.
    reached: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Indexed alone too, for the same recount over every funnel.
    created_at: datetime = Field(index=True, sa_type=_utc())
    updated_at: datetime = Field(sa_type=_utc())


class Event(SQLModel, table=True):
    """Something that happened to a subscriber: an answer, a purchase, a click, an unsubscribe."""

    __table_args__ = (sa.Index("ix_event_funnel_step_type", "funnel", "step", "type"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    funnel: str | None = Field(default=None, max_length=100)  # None: every funnel
    type: str = Field(max_length=20)
    at: datetime = Field(sa_type=_utc())
    question: str | None = Field(default=None, max_length=100)
    answer: str | None = Field(default=None, max_length=100)
    product: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=100)
    amount: float | None = None
    currency: str | None = Field(default=None, max_length=3)
    external_id: str | None = Field(default=None, max_length=200, unique=True)  # makes retries idempotent
    # The email the event came from (a click, open, unsubscribe, complaint or bounce): per-step stats.
    step: str | None = Field(default=None, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Delivery(SQLModel, table=True):
    """One email decided for one enrollment, and what became of it: exactly one per step."""

    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step", name="uq_delivery_enrollment_step"),
        sa.Index("ix_delivery_subscriber_created", "subscriber_id", "created_at"),
        # Per-step numbers (funnel stats, the guardrail check) group by these.
        sa.Index("ix_delivery_funnel_step_status", "funnel", "step", "status"),
        # A stats read with --since (and the guardrails' since the last resume) recounts the
        # hours of its first day from here.
        sa.Index("ix_delivery_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    funnel: str = Field(max_length=100)
    step: str = Field(max_length=100)
    segment: str | None = Field(default=None, max_length=100)
    marketing: bool = True
    message_id: str = Field(max_length=200, unique=True)
    # a DeliveryStatus: queued|sending|deferred -> sent|failed|bounced|rejected|unknown|suppressed
    status: str = Field(default=DeliveryStatus.QUEUED.value, max_length=20)
    attempts: int = Field(default=0)
    last_code: int | None = None
    last_reply: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=_utc())
    # Pending rows only; NULL once final. A claim pushes it out by the lease.
    next_attempt_at: datetime | None = Field(default=None, index=True, sa_type=_utc())
    sent_at: datetime | None = Field(default=None, sa_type=_utc())
    # The retry lifetime runs from here: mail held back (warm-up, throttle) has not been tried.
    first_attempt_at: datetime | None = Field(default=None, sa_type=_utc())
    updated_at: datetime = Field(sa_type=_utc())
    # The release (files) its message was rendered from; NULL until it is composed.
    release: str | None = Field(default=None, max_length=12)
    # What the recipient did with it, as tally_sql.ACTED's bits: kept by a database trigger
    # from the events naming its step, for the stats tallies. Never written by the engine.
    acted: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The experiment's variant it was decided with (docs/experiments.md); NULL: the email has none.
    variant: str | None = Field(default=None, max_length=100)


class Suppression(SQLModel, table=True):
    """An address never to be mailed again, kept as a SHA-256 so that erasure can keep it."""

    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=64, unique=True)
    reason: str = Field(max_length=20)  # bounced|complained|unsubscribed|forgotten|manual
    detail: str | None = Field(default=None, max_length=500)
    at: datetime = Field(sa_type=_utc())


class Milestone(SQLModel, table=True):
    """The first time an enrollment entered a stage: what funnel stage counts are made of."""

    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "stage", name="uq_milestone_enrollment_stage"),
        sa.Index("ix_milestone_funnel_stage", "funnel", "stage"),
    )

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    funnel: str = Field(max_length=100)
    stage: str = Field(max_length=20)
    at: datetime = Field(sa_type=_utc())


class StepPause(SQLModel, table=True):
    """A step held by a guardrail or a person: subscribers who reach it wait there."""

    __tablename__ = "step_pause"

    funnel: str = Field(primary_key=True, max_length=100)
    step: str = Field(primary_key=True, max_length=100)
    paused_at: datetime = Field(sa_type=_utc())
    metric: str = Field(max_length=20)  # unsubscribes|bounces|complaints|manual
    detail: str = Field(default="", max_length=500)
    # NULL while paused. Guardrails judge only what was sent after the last resume.
    resumed_at: datetime | None = Field(default=None, sa_type=_utc())
    resumed_by: str | None = Field(default=None, max_length=100)


class GuardrailEvent(SQLModel, table=True):
    """The history of pauses and resumes, for the dashboard and the alert trail."""

    __tablename__ = "guardrail_event"

    id: int | None = Field(default=None, primary_key=True)
    funnel: str = Field(max_length=100, index=True)
    step: str = Field(max_length=100)
    action: str = Field(max_length=20)  # paused|resumed
    metric: str | None = Field(default=None, max_length=20)
    detail: str = Field(default="", max_length=500)
    sends: int | None = None
    count: int | None = None
    threshold: float | None = None
    by: str | None = Field(default=None, max_length=100)  # who resumed: "cli", "dashboard"
    at: datetime = Field(sa_type=_utc())


class Release(SQLModel, table=True):
    """A snapshot of the sequence files and templates a daemon served, from when it went live."""

    id: str = Field(primary_key=True, max_length=12)  # the hash's first 12 hex digits
    hash: str = Field(max_length=64, unique=True)  # sha256 of the files: daemons write it once
    went_live_at: datetime = Field(sa_type=_utc())
    # What changed from the release before: emails_added/removed, templates_added/removed/changed.
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Meta(SQLModel, table=True):
    """Facts about the database itself, by key: "clock" (which kind of clock writes it)."""

    key: str = Field(primary_key=True, max_length=100)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_type=_utc())


class DashboardSession(SQLModel, table=True):
    """A dashboard login: the sha256 of its session id; a logout revokes it for every daemon."""

    __tablename__ = "dashboard_session"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_type=_utc())
    expires_at: datetime = Field(sa_type=_utc())
    revoked_at: datetime | None = Field(default=None, sa_type=_utc())


class Broadcast(SQLModel, table=True):
    """A broadcast file put on the calendar (`funnel broadcast schedule`); no row: a draft.

    The file says what goes and when; this row says that it may go, how far its audience
    has been taken, and whether it was cancelled (docs/broadcasts.md).
    """

    id: str = Field(primary_key=True, max_length=100)  # the file's `broadcast:` id
    funnel: str = Field(max_length=100)
    state: str = Field(max_length=20)  # scheduled|taking|sending|cancelled
    scheduled_at: datetime = Field(sa_type=_utc())
    scheduled_by: str = Field(default="", max_length=100)
    release: str | None = Field(default=None, max_length=12)  # the release it was scheduled from
    # Taking the audience, in batches by enrollment id: the last id taken, and how many so far.
    taken_through: int = Field(default=0)
    recipients: int = Field(default=0)
    audience_at: datetime | None = Field(default=None, sa_type=_utc())  # when taking began
    first_due_at: datetime | None = Field(default=None, sa_type=_utc())  # its first recipient's due time
    taken_at: datetime | None = Field(default=None, sa_type=_utc())  # when taking ended
    cancelled_at: datetime | None = Field(default=None, sa_type=_utc())
    cancelled_by: str | None = Field(default=None, max_length=100)
    # An experiment's winner, chosen once for good at its time, and the decision in words.
    winner: str | None = Field(default=None, max_length=100)
    decision: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(sa_type=_utc())


class BroadcastRecipient(SQLModel, table=True):
    """One enrollment a broadcast goes to, when it is due to them, and what became of it."""

    __tablename__ = "broadcast_recipient"
    __table_args__ = (
        # The tick reads a claimed enrollment's pending broadcasts by enrollment.
        sa.Index("ix_broadcast_recipient_enrollment", "enrollment_id", "status"),
        sa.Index("ix_broadcast_recipient_broadcast_status", "broadcast", "status"),
    )

    broadcast: str = Field(primary_key=True, max_length=100)
    enrollment_id: int = Field(primary_key=True, foreign_key="enrollment.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    due_at: datetime = Field(sa_type=_utc())
    status: str = Field(default="pending", max_length=20)  # pending|sent|skipped|cancelled
    reason: str | None = Field(default=None, max_length=300)  # why it was skipped
    decided_at: datetime | None = Field(default=None, sa_type=_utc())


class Tally(SQLModel, table=True):
    """A change to a stats count, appended by a database trigger (engine/store/tally_sql.py).

    Appending never waits for another writer; `tallies.fold` sums these into `tally_total`.
    """

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)  # cohort|revenue|product|customer|answer
    funnel: str = Field(max_length=100)
    day: str = Field(max_length=10)  # the enrollment's signup day, UTC, YYYY-MM-DD
    k1: str = Field(default="", max_length=200)  # the kind's key parts ('' for none)
    k2: str = Field(default="", max_length=200)
    k3: str = Field(default="", max_length=200)
    k4: str = Field(default="", max_length=200)
    n: int = 0
    amount: float = 0.0
    priced: int = 0  # of `n` purchases, how many had an amount


class TallyTotal(SQLModel, table=True):
    """The sum of every folded `tally` row, one row per key."""

    __tablename__ = "tally_total"

    kind: str = Field(primary_key=True, max_length=10)
    funnel: str = Field(primary_key=True, max_length=100)
    day: str = Field(primary_key=True, max_length=10)
    k1: str = Field(primary_key=True, max_length=200)
    k2: str = Field(primary_key=True, max_length=200)
    k3: str = Field(primary_key=True, max_length=200)
    k4: str = Field(primary_key=True, max_length=200)
    n: int = 0
    amount: float = 0.0
    priced: int = 0


METADATA = SQLModel.metadata
SUBSCRIBER = METADATA.tables["subscriber"]
CONSENT = METADATA.tables["consent"]
TAG = METADATA.tables["tag"]
ENROLLMENT = METADATA.tables["enrollment"]
EVENT = METADATA.tables["event"]
DELIVERY = METADATA.tables["delivery"]
SUPPRESSION = METADATA.tables["suppression"]
MILESTONE = METADATA.tables["milestone"]
STEP_PAUSE = METADATA.tables["step_pause"]
GUARDRAIL_EVENT = METADATA.tables["guardrail_event"]
RELEASE = METADATA.tables["release"]
META = METADATA.tables["meta"]
DASHBOARD_SESSION = METADATA.tables["dashboard_session"]
BROADCAST = METADATA.tables["broadcast"]
BROADCAST_RECIPIENT = METADATA.tables["broadcast_recipient"]
TALLY = METADATA.tables["tally"]
TALLY_TOTAL = METADATA.tables["tally_total"]
