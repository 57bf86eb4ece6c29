"""Dashboard sessions on the server: opened at login, revoked at logout, read on every page.

A row holds the sha256 of the session id that the signed cookie carries, never the id
itself: a copy of the database (a backup) does not give anyone a session. Every daemon
on the database reads the same rows, so a logout through one holds for all of them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.store.tables import DASHBOARD_SESSION


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def open_session(conn: Connection, sid: str, now: datetime, expires_at: datetime) -> None:
    """Record a new login, and delete the rows of sessions that have expired (revoked or not)."""
    conn.execute(sa.delete(DASHBOARD_SESSION).where(DASHBOARD_SESSION.c.expires_at <= now))
    conn.execute(sa.insert(DASHBOARD_SESSION).values(id=_key(sid), created_at=now, expires_at=expires_at,
                                                     revoked_at=None))


def session_alive(conn: Connection, sid: str, now: datetime) -> bool:
    """Whether the session was opened here, is not revoked and has not expired: one primary-key read."""
    row = conn.execute(
        sa.select(DASHBOARD_SESSION.c.expires_at, DASHBOARD_SESSION.c.revoked_at)
        .where(DASHBOARD_SESSION.c.id == _key(sid))
    ).first()
    return row is not None and row.revoked_at is None and row.expires_at > now


def revoke(conn: Connection, sid: str, now: datetime) -> bool:
    """End the session for every daemon; True when it was open until now."""
    result = conn.execute(
        sa.update(DASHBOARD_SESSION)
        .where(DASHBOARD_SESSION.c.id == _key(sid), DASHBOARD_SESSION.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1
