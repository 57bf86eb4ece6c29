"""daily tallies: the triggers that count what happens each day, for the dashboard's charts over time

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 18:40:00
"""

from __future__ import annotations

from alembic import op

from engine.store import daily, daily_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    # The list there already: its days counted once from its rows, then kept by the triggers.
    conn = op.get_bind()
    daily.count_afresh(conn)
    daily_sql.install(conn)


def downgrade() -> None:
    """Revert this revision."""
    conn = op.get_bind()
    daily_sql.uninstall(conn)
    conn.exec_driver_sql(f"DELETE FROM tally WHERE kind = '{daily_sql.KIND}'")
    conn.exec_driver_sql(f"DELETE FROM tally_total WHERE kind = '{daily_sql.KIND}'")
