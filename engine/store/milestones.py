"""Milestones: the first time each enrollment entered each stage, written by the deciding tick."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from engine.store.inserts import insert_ignoring_conflicts
from engine.store.tables import MILESTONE


def record_milestones(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store (enrollment_id, subscriber_id, funnel, stage, at) rows; a stage keeps its first time."""
    if not rows:
        return 0
    return insert_ignoring_conflicts(conn, MILESTONE, rows, ["enrollment_id", "stage"])
