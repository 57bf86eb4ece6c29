"""The tables: subscribers, consent, tags, enrollments, events, deliveries, suppressions, and the rest.

Times are stored as UTC. Every statement the engine runs is a Core statement on these
`Table` objects (claiming and marking 500 rows costs ~32 ms with Core statements against
~170 ms with ORM objects on SQLite here), so they are defined in Core, not as SQLModel
classes: no ORM class was ever used, and defining them through SQLModel cost every process
that touches the database 0.15 s of CPU here (importing sqlmodel and SQLAlchemy's ORM, then
building a pydantic model and a mapper per table), `funnel subscribers show` included.
The schema is the one the SQLModel classes made, column for column (the migrations and
tests/store/test_tables.py say so): a string column is VARCHAR(n) as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

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


METADATA = sa.MetaData()


def _id() -> sa.Column[int]:
    """The integer key the database numbers."""
    return sa.Column("id", sa.Integer, primary_key=True)


def _str(name: str, length: int, *, null: bool = False, **options: Any) -> sa.Column[str]:
    """A VARCHAR(length) column; NOT NULL unless `null`."""
    return sa.Column(name, sa.String(length), nullable=null, **options)


def _int(name: str, *, null: bool = False, **options: Any) -> sa.Column[int]:
    """An INTEGER column; NOT NULL unless `null`."""
    return sa.Column(name, sa.Integer, nullable=null, **options)


def _utc(name: str, *, null: bool = False, **options: Any) -> sa.Column[datetime]:
    """An aware UTC time (UtcDateTime); NOT NULL unless `null`."""
    return sa.Column(name, UtcDateTime(), nullable=null, **options)


def _json(name: str) -> sa.Column[Any]:
    """A JSON document, never NULL (an empty one is {} or [])."""
    return sa.Column(name, sa.JSON, nullable=False)


def _ref(name: str, target: str, **options: Any) -> sa.Column[int]:
    """An INTEGER NOT NULL pointing at `target` ("table.id"), deleted with the row it points at."""
    return sa.Column(name, sa.Integer, sa.ForeignKey(target, ondelete="CASCADE"), nullable=False, **options)


# A person on the list, once per address (case-insensitively).
SUBSCRIBER = sa.Table(
    "subscriber", METADATA,
    _id(),
    _str("email", 320),  # as given, domain lowercased
    _str("email_key", 320, unique=True),  # lowercased: the identity
    _str("name", 200, default=""),
    # As the person gave them (a form's first_name/last_name fields, a CSV column, the API);
    # None: not given, and templates fall back to what is safe to take from `name`.
    _str("first_name", 100, null=True),
    _str("last_name", 100, null=True),
    _str("locale", 35, default="en"),
    _str("timezone", 64, default="UTC"),
    _str("status", 20, default=SubscriberStatus.ACTIVE.value),  # a SubscriberStatus
    _json("fields"),
    _str("source", 200, null=True),
    _str("utm_source", 200, null=True),
    _str("utm_medium", 200, null=True),
    _str("utm_campaign", 200, null=True),
    _str("utm_term", 200, null=True),
    _str("utm_content", 200, null=True),
    _utc("created_at"),
    _utc("updated_at"),
)

# Proof of a signup, confirmation or import: when, from where, and the wording shown.
CONSENT = sa.Table(
    "consent", METADATA,
    _id(),
    _ref("subscriber_id", "subscriber.id", index=True),
    _str("kind", 20),  # signup|confirm|import
    _utc("at"),
    _str("funnel", 100, null=True),
    _str("form", 200, null=True),
    _str("ip", 45, null=True),
    _str("user_agent", 500, null=True),
    _str("wording", 2000, null=True),
)

# A label on a subscriber.
TAG = sa.Table(
    "tag", METADATA,
    _ref("subscriber_id", "subscriber.id", primary_key=True),
    _str("name", 100, primary_key=True),
    _utc("at"),
)

# One subscriber's position in one funnel: the interpreter's State as a row.
ENROLLMENT = sa.Table(
    "enrollment", METADATA,
    _id(),
    _ref("subscriber_id", "subscriber.id"),
    _str("funnel", 100, index=True),
    _str("magnet", 100, null=True),
    _str("stage", 20),
    _utc("since"),
    _str("segment", 100, null=True),
    _str("step", 100, null=True),
    _utc("last_sent_at", null=True),
    _utc("deadline", null=True),
    _json("done"),
    _str("reason", 300, null=True),
    _str("resume_stage", 20, null=True),  # win-back: where a click returns them
    _str("resume_step", 100, null=True),
    # When the tick should look at this row next; NULL: only an event wakes it.
    _utc("next_run_at", null=True, index=True),
    # The stages and deeds it reached, as tally_sql.REACHED's bits: kept by database triggers
    # from its milestones and events, for the stats tallies. Never written by the engine.
    _int("reached", default=0, server_default="0"),
    # Indexed alone too, for the same recount over every funnel.
    _utc("created_at", index=True),
    _utc("updated_at"),
    sa.UniqueConstraint("subscriber_id", "funnel", name="uq_enrollment_subscriber_funnel"),
    # A stats read with --since recounts the hours of its first day from here, and a
    # broadcast's audience is counted from it alone (0006: it covers what the audience
    # reads of an enrollment, so a million are counted without reading their rows).
    sa.Index("ix_enrollment_audience", "funnel", "created_at", "stage", "segment", "subscriber_id",
             "reached"),
    # Who stands where, for the funnel map: a GROUP BY read from the index alone (0007).
    sa.Index("ix_enrollment_position", "funnel", "stage", "segment", "step", "magnet"),
)

# Something that happened to a subscriber: an answer, a purchase, a click, an unsubscribe.
EVENT = sa.Table(
    "event", METADATA,
    _id(),
    _ref("subscriber_id", "subscriber.id", index=True),
    _str("funnel", 100, null=True),  # None: every funnel
    _str("type", 20),
    _utc("at"),
    _str("question", 100, null=True),
    _str("answer", 100, null=True),
    _str("product", 200, null=True),
    _str("name", 100, null=True),
    sa.Column("amount", sa.Float, nullable=True),
    _str("currency", 3, null=True),
    _str("external_id", 200, null=True, unique=True),  # makes retries idempotent
    # The email the event came from (a click, open, unsubscribe, complaint or bounce): per-step stats.
    _str("step", 100, null=True),
    _json("data"),
    sa.Index("ix_event_funnel_step_type", "funnel", "step", "type"),
)

# One email decided for one enrollment, and what became of it: exactly one per step.
DELIVERY = sa.Table(
    "delivery", METADATA,
    _id(),
    _ref("enrollment_id", "enrollment.id"),
    _ref("subscriber_id", "subscriber.id"),
    _str("funnel", 100),
    _str("step", 100),
    _str("segment", 100, null=True),
    sa.Column("marketing", sa.Boolean, nullable=False, default=True),
    _str("message_id", 200, unique=True),
    # a DeliveryStatus: queued|sending|deferred -> sent|failed|bounced|rejected|unknown|suppressed
    _str("status", 20, default=DeliveryStatus.QUEUED.value),
    _int("attempts", default=0),
    _int("last_code", null=True),
    _str("last_reply", 500, null=True),
    _utc("created_at"),
    # Pending rows only; NULL once final. A claim pushes it out by the lease.
    _utc("next_attempt_at", null=True, index=True),
    _utc("sent_at", null=True),
    # The retry lifetime runs from here: mail held back (warm-up, throttle) has not been tried.
    _utc("first_attempt_at", null=True),
    _utc("updated_at"),
    # The release (files) its message was rendered from; NULL until it is composed.
    _str("release", 12, null=True),
    # What the recipient did with it, as tally_sql.ACTED's bits: kept by a database trigger
    # from the events naming its step, for the stats tallies. Never written by the engine.
    _int("acted", default=0, server_default="0"),
    # The experiment's variant it was decided with (docs/experiments.md); NULL: the email has none.
    _str("variant", 100, null=True),
    sa.UniqueConstraint("enrollment_id", "step", name="uq_delivery_enrollment_step"),
    sa.Index("ix_delivery_subscriber_created", "subscriber_id", "created_at"),
    # Per-step numbers (funnel stats, the guardrail check) group by these.
    sa.Index("ix_delivery_funnel_step_status", "funnel", "step", "status"),
    # A stats read with --since (and the guardrails' since the last resume) recounts the
    # hours of its first day from here.
    sa.Index("ix_delivery_created_at", "created_at"),
)

# An address never to be mailed again, kept as a SHA-256 so that erasure can keep it.
SUPPRESSION = sa.Table(
    "suppression", METADATA,
    _id(),
    _str("email_hash", 64, unique=True),
    _str("reason", 20),  # bounced|complained|unsubscribed|forgotten|manual
    _str("detail", 500, null=True),
    _utc("at"),
)

# The first time an enrollment entered a stage: what funnel stage counts are made of.
MILESTONE = sa.Table(
    "milestone", METADATA,
    _id(),
    _ref("enrollment_id", "enrollment.id"),
    _ref("subscriber_id", "subscriber.id", index=True),
    _str("funnel", 100),
    _str("stage", 20),
    _utc("at"),
    sa.UniqueConstraint("enrollment_id", "stage", name="uq_milestone_enrollment_stage"),
    sa.Index("ix_milestone_funnel_stage", "funnel", "stage"),
)

# A step held by a guardrail or a person: subscribers who reach it wait there.
STEP_PAUSE = sa.Table(
    "step_pause", METADATA,
    _str("funnel", 100, primary_key=True),
    _str("step", 100, primary_key=True),
    _utc("paused_at"),
    _str("metric", 20),  # unsubscribes|bounces|complaints|manual
    _str("detail", 500, default=""),
    # NULL while paused. Guardrails judge only what was sent after the last resume.
    _utc("resumed_at", null=True),
    _str("resumed_by", 100, null=True),
)

# The history of pauses and resumes, for the dashboard and the alert trail.
GUARDRAIL_EVENT = sa.Table(
    "guardrail_event", METADATA,
    _id(),
    _str("funnel", 100, index=True),
    _str("step", 100),
    _str("action", 20),  # paused|resumed
    _str("metric", 20, null=True),
    _str("detail", 500, default=""),
    _int("sends", null=True),
    _int("count", null=True),
    sa.Column("threshold", sa.Float, nullable=True),
    _str("by", 100, null=True),  # who resumed: "cli", "dashboard"
    _utc("at"),
)

# A snapshot of the sequence files and templates a daemon served, from when it went live.
RELEASE = sa.Table(
    "release", METADATA,
    _str("id", 12, primary_key=True),  # the hash's first 12 hex digits
    _str("hash", 64, unique=True),  # sha256 of the files: daemons write it once
    _utc("went_live_at"),
    # What changed from the release before: emails_added/removed, templates_added/removed/changed.
    _json("summary"),
)

# Facts about the database itself, by key: "clock" (which kind of clock writes it).
META = sa.Table(
    "meta", METADATA,
    _str("key", 100, primary_key=True),
    _json("value"),
    _utc("updated_at"),
)

# A dashboard login: the sha256 of its session id; a logout revokes it for every daemon.
DASHBOARD_SESSION = sa.Table(
    "dashboard_session", METADATA,
    _str("id", 64, primary_key=True),
    _utc("created_at"),
    _utc("expires_at"),
    _utc("revoked_at", null=True),
)

# A broadcast file put on the calendar (`funnel broadcast schedule`); no row: a draft.
# The file says what goes and when; this row says that it may go, how far its audience
# has been taken, and whether it was cancelled (docs/broadcasts.md).
BROADCAST = sa.Table(
    "broadcast", METADATA,
    _str("id", 100, primary_key=True),  # the file's `broadcast:` id
    _str("funnel", 100),
    _str("state", 20),  # scheduled|taking|sending|cancelled
    _utc("scheduled_at"),
    _str("scheduled_by", 100, default=""),
    _str("release", 12, null=True),  # the release it was scheduled from
    # Taking the audience, in batches by enrollment id: the last id taken, and how many so far.
    _int("taken_through", default=0),
    _int("recipients", default=0),
    _utc("audience_at", null=True),  # when taking began
    _utc("first_due_at", null=True),  # its first recipient's due time
    _utc("taken_at", null=True),  # when taking ended
    _utc("cancelled_at", null=True),
    _str("cancelled_by", 100, null=True),
    # An experiment's winner, chosen once for good at its time, and the decision in words.
    _str("winner", 100, null=True),
    _str("decision", 500, null=True),
    _utc("updated_at"),
)

# One enrollment a broadcast goes to, when it is due to them, and what became of it.
BROADCAST_RECIPIENT = sa.Table(
    "broadcast_recipient", METADATA,
    _str("broadcast", 100, primary_key=True),
    _ref("enrollment_id", "enrollment.id", primary_key=True),
    _ref("subscriber_id", "subscriber.id"),
    _utc("due_at"),
    _str("status", 20, default="pending"),  # pending|sent|skipped|cancelled
    _str("reason", 300, null=True),  # why it was skipped
    _utc("decided_at", null=True),
    # The tick reads a claimed enrollment's pending broadcasts by enrollment.
    sa.Index("ix_broadcast_recipient_enrollment", "enrollment_id", "status"),
    sa.Index("ix_broadcast_recipient_broadcast_status", "broadcast", "status"),
)

# A change to a stats count, appended by a database trigger (engine/store/tally_sql.py).
# Appending never waits for another writer; `tallies.fold` sums these into `tally_total`.
TALLY = sa.Table(
    "tally", METADATA,
    _id(),
    _str("kind", 10),  # cohort|revenue|product|customer|answer
    _str("funnel", 100),
    _str("day", 10),  # the enrollment's signup day, UTC, YYYY-MM-DD
    _str("k1", 200, default=""),  # the kind's key parts ('' for none)
    _str("k2", 200, default=""),
    _str("k3", 200, default=""),
    _str("k4", 200, default=""),
    _int("n", default=0),
    sa.Column("amount", sa.Float, nullable=False, default=0.0),
    _int("priced", default=0),  # of `n` purchases, how many had an amount
)

# The sum of every folded `tally` row, one row per key.
TALLY_TOTAL = sa.Table(
    "tally_total", METADATA,
    _str("kind", 10, primary_key=True),
    _str("funnel", 100, primary_key=True),
    _str("day", 10, primary_key=True),
    _str("k1", 200, primary_key=True),
    _str("k2", 200, primary_key=True),
    _str("k3", 200, primary_key=True),
    _str("k4", 200, primary_key=True),
    _int("n", default=0),
    sa.Column("amount", sa.Float, nullable=False, default=0.0),
    _int("priced", default=0),
)
