"""broadcasts and experiments: the broadcast and broadcast_recipient tables, delivery.variant,
the enrollment index that covers an audience

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "broadcast",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("funnel", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("scheduled_at", UtcDateTime(), nullable=False),
        sa.Column("scheduled_by", sa.String(length=100), nullable=False),
        sa.Column("release", sa.String(length=12), nullable=True),
        sa.Column("taken_through", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("audience_at", UtcDateTime(), nullable=True),
        sa.Column("first_due_at", UtcDateTime(), nullable=True),
        sa.Column("taken_at", UtcDateTime(), nullable=True),
        sa.Column("cancelled_at", UtcDateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=100), nullable=True),
        sa.Column("winner", sa.String(length=100), nullable=True),
        sa.Column("decision", sa.String(length=500), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "broadcast_recipient",
        sa.Column("broadcast", sa.String(length=100), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollment.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("broadcast", "enrollment_id"),
    )
    op.create_index("ix_broadcast_recipient_enrollment", "broadcast_recipient", ["enrollment_id", "status"])
    op.create_index("ix_broadcast_recipient_broadcast_status", "broadcast_recipient", ["broadcast", "status"])
    # The (funnel, created_at) index of 0005, widened to cover a broadcast's audience count.
    op.create_index("ix_enrollment_audience", "enrollment",
                    ["funnel", "created_at", "stage", "segment", "subscriber_id", "reached"])
    op.drop_index("ix_enrollment_funnel_created_at", table_name="enrollment")
    # Plain ALTER TABLE on both databases: a batch copy of `delivery` on SQLite would drop the
    # stats triggers that name it (0005).
    op.add_column("delivery", sa.Column("variant", sa.String(length=100), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.execute("ALTER TABLE delivery DROP COLUMN variant")  # SQLite 3.35+ and PostgreSQL alike
    op.create_index("ix_enrollment_funnel_created_at", "enrollment", ["funnel", "created_at"])
    op.drop_index("ix_enrollment_audience", table_name="enrollment")
    op.drop_index("ix_broadcast_recipient_broadcast_status", table_name="broadcast_recipient")
    op.drop_index("ix_broadcast_recipient_enrollment", table_name="broadcast_recipient")
    op.drop_table("broadcast_recipient")
    op.drop_table("broadcast")
