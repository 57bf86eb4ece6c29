"""stats tallies: enrollment.reached, delivery.acted, the tally and tally_total tables, their triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 13:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from engine.store import tallies, tally_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _tally_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("funnel", sa.String(length=100), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        *(sa.Column(f"k{i}", sa.String(length=200), nullable=False) for i in range(1, 5)),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("priced", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reached", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_enrollment_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_enrollment_funnel_created_at", ["funnel", "created_at"], unique=False)
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acted", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_delivery_created_at", ["created_at"], unique=False)
    op.create_table("tally", sa.Column("id", sa.Integer(), nullable=False), *_tally_columns(),
                    sa.PrimaryKeyConstraint("id"))
    op.create_table("tally_total", *_tally_columns(),
                    sa.PrimaryKeyConstraint("kind", "funnel", "day", "k1", "k2", "k3", "k4"))
    # The list there already: its masks and tallies counted once from its rows (at a million
    # subscribers this takes about as long as one `funnel stats` did before: tens of seconds).
    conn = op.get_bind()
    tallies.replace_totals(conn)
    tally_sql.install(conn)


def downgrade() -> None:
    """Revert this revision."""
    tally_sql.uninstall(op.get_bind())
    op.drop_table("tally_total")
    op.drop_table("tally")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_created_at")
        batch_op.drop_column("acted")
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollment_funnel_created_at")
        batch_op.drop_index("ix_enrollment_created_at")
        batch_op.drop_column("reached")
