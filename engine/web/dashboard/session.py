"""A dashboard session: what its signed cookie carries, how it is made and how it is read back.

A session is a token signed with the daemon's secret (engine/mail/tokens.py) for the
purpose 'dashboard-session', carrying a random session id and a tag of the password: a
cookie cannot be forged or changed, it expires after SESSION_LIFETIME of real time, and
changing the password ends every session. Nothing is stored on the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.mail.tokens import sign, verify
from engine.web.dashboard import csrf

SESSION_LIFETIME = timedelta(hours=12)
_PURPOSE = "dashboard-session"


@dataclass(frozen=True)
class Session:
    """A logged-in browser: its session id and the CSRF token of its forms."""

    sid: str
    csrf: str


def password_tag(secret: str, password: str) -> str:
    """A short HMAC of the password: a session made under another password is no longer valid."""
    digest = hmac.digest(secret.encode("utf-8"), f"dashboard-password\0{password}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest[:12]).decode("ascii")


def session_token(secret: str, password: str, issued: datetime, sid: str | None = None) -> str:
    """The value of a session cookie issued at `issued`."""
    return sign(secret, _PURPOSE, [sid or secrets.token_urlsafe(16), password_tag(secret, password)], issued)


def read_session(secret: str, password: str, cookie: str, now: datetime) -> Session | None:
    """The session a cookie holds, or None when it is forged, expired or of another password."""
    values = verify(secret, _PURPOSE, cookie, now, SESSION_LIFETIME)
    if values is None or len(values) != 2:
        return None
    sid, tag = values
    if not hmac.compare_digest(tag, password_tag(secret, password)):
        return None
    return Session(sid, csrf.token(secret, f"session:{sid}"))
