"""stats, guardrails and win-back: event.step, milestones, step pauses, the win-back return point

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:33:43.152235
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "guardrail_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("funnel", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("by", sa.String(length=100), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("guardrail_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guardrail_event_funnel"), ["funnel"], unique=False)

    op.create_table(
        "step_pause",
        sa.Column("funnel", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("paused_at", UtcDateTime(), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("resumed_at", UtcDateTime(), nullable=True),
        sa.Column("resumed_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("funnel", "step"),
    )
    op.create_table(
        "milestone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("funnel", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollment.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enrollment_id", "stage", name="uq_milestone_enrollment_stage"),
    )
    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.create_index("ix_milestone_funnel_stage", ["funnel", "stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_milestone_subscriber_id"), ["subscriber_id"], unique=False)

    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resume_stage", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("resume_step", sa.String(length=100), nullable=True))

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_attempt_at", UtcDateTime(), nullable=True))
        batch_op.create_index("ix_delivery_funnel_step_status", ["funnel", "step", "status"], unique=False)

    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_event_funnel_step_type", ["funnel", "step", "type"], unique=False)

    _backfill_milestones()


# Stages an enrollment has certainly passed through to stand where it stands now; databases
# from before this revision kept no milestones, so this and the paths of the emails it was
# sent (`done`) are the best account of them.
_REACHED = {
    "magnet": ("magnet", "survey", "answering", "nurture", "sales", "sales_done", "customer"),
    "survey": ("survey", "answering", "nurture", "sales", "sales_done", "customer"),
    "nurture": ("nurture", "sales", "sales_done"),
    "sales": ("sales", "sales_done"),
    "customer": ("customer",),
}
# The stage an email's path proves was reached: an ended enrollment keeps its history here.
_PATH_STAGE = {"magnet": "magnet", "survey": "survey", "nurture": "nurture", "sales": "sales",
               "customer": "customer"}
_CHUNK = 5000


def _reached(stage: str, done: list[list[object]] | None) -> set[str]:
    found = {name for name, current in _REACHED.items() if stage in current}
    for entry in done or []:
        path = entry[1] if len(entry) > 1 else None
        if isinstance(path, str) and path in _PATH_STAGE:
            found.add(_PATH_STAGE[path])
    if found & {"survey", "nurture", "sales", "customer"}:
        found.add("magnet")  # nothing comes after the magnet without it
    return found


def _backfill_milestones() -> None:
    enrollment = sa.table(
        "enrollment",
        sa.column("id"),
        sa.column("subscriber_id"),
        sa.column("funnel"),
        sa.column("stage"),
        sa.column("since", UtcDateTime()),
        sa.column("done", sa.JSON()),
    )
    milestone = sa.table(
        "milestone",
        sa.column("enrollment_id"),
        sa.column("subscriber_id"),
        sa.column("funnel"),
        sa.column("stage"),
        sa.column("at", UtcDateTime()),
    )
    conn = op.get_bind()
    rows: list[dict[str, object]] = []
    query = sa.select(enrollment).order_by(enrollment.c.id)
    for row in conn.execute(query).mappings().all():
        for stage in sorted(_reached(row["stage"], row["done"])):
            rows.append({"enrollment_id": row["id"], "subscriber_id": row["subscriber_id"],
                         "funnel": row["funnel"], "stage": stage, "at": row["since"]})
        if len(rows) >= _CHUNK:
            conn.execute(milestone.insert(), rows)
            rows = []
    if rows:
        conn.execute(milestone.insert(), rows)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_funnel_step_type")
        batch_op.drop_column("step")

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_funnel_step_status")
        batch_op.drop_column("first_attempt_at")

    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_column("resume_step")
        batch_op.drop_column("resume_stage")

    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_milestone_subscriber_id"))
        batch_op.drop_index("ix_milestone_funnel_stage")

    op.drop_table("milestone")
    op.drop_table("step_pause")
    with op.batch_alter_table("guardrail_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardrail_event_funnel"))

    op.drop_table("guardrail_event")
