"""A dashboard session: what its signed cookie carries, how it is made and how it is read back.

A session is a token signed with the daemon's secret (engine/mail/tokens.py) for the
purpose 'dashboard-session', carrying a random session id and a tag of the password: a
cookie cannot be forged or changed, it expires after SESSION_LIFETIME of real time, and
changing the password ends every session. The server keeps the sha256 of the session id
(engine/store/sessions.py) so that a logout ends the session for every daemon, even though
the cookie's signature would still hold.

A browser that logged in also gets a device token ('dashboard-device'): it does not open
any page, it only tells the login limit that this browser has logged in before (auth.py).
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
DEVICE_LIFETIME = timedelta(days=90)
_PURPOSE = "dashboard-session"
_DEVICE_PURPOSE = "dashboard-device"


@dataclass(frozen=True)
class Session:
    """A logged-in browser: its session id and the CSRF token of its forms."""

    sid: str
    csrf: str


def password_tag(secret: str, password: str) -> str:
    """A short HMAC of the password: a session made under another password is no longer valid."""
    digest = hmac.digest(secret.encode("utf-8"), f"dashboard-password\0{password}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest[:12]).decode("ascii")


def new_sid() -> str:
    """A random session id: 128 bits."""
    return secrets.token_urlsafe(16)


def session_token(secret: str, password: str, issued: datetime, sid: str | None = None) -> str:
    """The value of a session cookie issued at `issued` (the server must also hold its id to accept it)."""
    return sign(secret, _PURPOSE, [sid or new_sid(), password_tag(secret, password)], issued)


def read_session(secret: str, password: str, cookie: str, now: datetime) -> Session | None:
    """The session a cookie holds, or None when it is forged, expired or of another password."""
    values = verify(secret, _PURPOSE, cookie, now, SESSION_LIFETIME)
    if values is None or len(values) != 2:
        return None
    sid, tag = values
    if not hmac.compare_digest(tag, password_tag(secret, password)):
        return None
    return Session(sid, csrf.token(secret, f"session:{sid}"))


def device_token(secret: str, password: str, issued: datetime) -> str:
    """The value of the cookie that marks a browser which logged in with this password."""
    return sign(secret, _DEVICE_PURPOSE, [secrets.token_urlsafe(16), password_tag(secret, password)], issued)


def read_device(secret: str, password: str, cookie: str | None, now: datetime) -> str | None:
    """The id of a browser that logged in before, or None for any other cookie (or none)."""
    if not cookie:
        return None
    values = verify(secret, _DEVICE_PURPOSE, cookie, now, DEVICE_LIFETIME)
    if values is None or len(values) != 2:
        return None
    if not hmac.compare_digest(values[1], password_tag(secret, password)):
        return None
    return values[0]
