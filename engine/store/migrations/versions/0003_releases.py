"""releases: the release table (what went live, when, what changed) and delivery.release

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 09:16:25.747651
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "release",
        sa.Column("id", sa.String(length=12), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("went_live_at", UtcDateTime(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    # Older deliveries keep NULL: nothing recorded which files they were rendered from.
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("release", sa.String(length=12), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("release")
    op.drop_table("release")
