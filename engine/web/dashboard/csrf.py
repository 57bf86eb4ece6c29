"""CSRF tokens of the dashboard's forms: an HMAC of the session (or the login page's nonce).

Every form carries the token in a hidden field and every POST is checked against it, so
a page on another site cannot make a logged-in browser press a button here (the
SameSite=Strict cookie already stops most of that; the token also covers browsers that
ignore SameSite). Nothing is stored: the token is derived from what the cookie holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

FIELD = "csrf"
FORM_TYPE = "application/x-www-form-urlencoded"  # what the dashboard's forms send
MAX_FORM = 8 * 1024  # a password, a token and a path


def token(secret: str, scope: str) -> str:
    """The token of forms shown in `scope` ('session:<id>' or 'login:<nonce>')."""
    digest = hmac.digest(secret.encode("utf-8"), f"dashboard-csrf\0{scope}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


def valid(secret: str, scope: str, given: str | None) -> bool:
    """Whether `given` is the token of `scope`, compared in constant time."""
    if not given or not given.isascii():
        return False
    return hmac.compare_digest(token(secret, scope), given)


async def posted(request: Request) -> dict[str, str]:
    """The fields of a dashboard form post; empty for any other body (which then fails the check)."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != FORM_TYPE:
        return {}
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM):
        return {}
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return {}
    except ClientDisconnect:
        return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return {}
