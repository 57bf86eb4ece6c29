"""delivery triggers once a statement: PostgreSQL's tallies of mail counted over each statement's rows

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:20:00
"""

from __future__ import annotations

from alembic import op

from engine.store import daily_sql, tally_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# SQLite has only row triggers: nothing changes there.
_NAMES = (*tally_sql.DELIVERY_TRIGGERS, *daily_sql.DELIVERY_TRIGGERS)


def _replace(per_row: bool) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    tally_sql.drop(conn, _NAMES)
    for ddl in (*tally_sql.trigger_ddl("postgresql", tally_sql.DELIVERY_TRIGGERS, per_row),
                *daily_sql.trigger_ddl("postgresql", daily_sql.DELIVERY_TRIGGERS, per_row)):
        conn.exec_driver_sql(ddl)


def upgrade() -> None:
    """Apply this revision."""
    # The tallies already counted stay as they are: both forms count the same.
    _replace(per_row=False)


def downgrade() -> None:
    """Revert this revision."""
    _replace(per_row=True)
