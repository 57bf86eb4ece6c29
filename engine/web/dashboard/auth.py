"""The dashboard's login: one password, a signed session cookie, the session's hash on the server.

The password is `admin_password`, else `api_key`; with neither, the dashboard is off. The
session cookie is made and read in session.py; the database holds the sha256 of each
session id (engine/store/sessions.py), and a page opens only while that row is there, not
revoked (logout) and not expired.

Login attempts are limited twice: per client (an IPv4 address or an IPv6 /64), and per
account. The account limit is shared by every browser that has never logged in here; a
browser that has (it carries a signed device cookie) gets its own allowance instead. So
guessing from any number of addresses goes no faster than LOGIN_ATTEMPTS per LOGIN_PERIOD,
and an attacker who makes the shared allowance run out holds back new browsers only,
never the owner's own (docs/dashboard.md, Login limits).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from engine.logs import log
from engine.store import sessions
from engine.web import limits
from engine.web.context import Web, client_ip
from engine.web.dashboard import csrf
from engine.web.dashboard.render import HEADERS, page
from engine.web.dashboard.session import (
    DEVICE_LIFETIME,
    SESSION_LIFETIME,
    Session,
    device_token,
    new_sid,
    read_device,
    read_session,
    session_token,
)

SESSION_COOKIE = "funnel_dashboard"
LOGIN_COOKIE = "funnel_dashboard_login"
DEVICE_COOKIE = "funnel_dashboard_device"
LOGIN_FORM_LIFETIME = timedelta(hours=1)
# Attempts per client (IPv4 address, IPv6 /64), and failed logins per account (all new
# browsers together, or one known browser), each LOGIN_PERIOD: enough for typos, too few
# to guess a password (960 guesses a day from any number of addresses).
LOGIN_ATTEMPTS = 10
LOGIN_PERIOD = 900.0
NEW_BROWSERS = "new-browsers"  # the account limit's key shared by every browser without a device cookie
_ACCOUNT_LIMITED = ("Too many login attempts on this dashboard from browsers that have not logged in here "
                    "before; wait a few minutes, or log in from a browser that has.")
_BROWSER_LIMITED = "Too many login attempts from this browser; wait a few minutes and try again."
HOME = "/dashboard"


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of the dashboard, never another site."""
    if not value or len(value) > 2000 or not value.isascii() or "\\" in value:
        return HOME
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/"):
        return HOME
    if parts.path != HOME and not parts.path.startswith(HOME + "/"):
        return HOME
    if ".." in parts.path.split("/") or "//" in parts.path:
        return HOME
    return value


class Gate:
    """Who may see the dashboard: reads and writes the session cookie of a request."""

    def __init__(self, web: Web, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.web = web
        # Real time, not the daemon's clock: a demo with --time-scale must not end sessions in seconds.
        self.now = now
        self.attempts = limits.RateLimit(LOGIN_ATTEMPTS, LOGIN_PERIOD)  # per client
        self.account = limits.RateLimit(LOGIN_ATTEMPTS, LOGIN_PERIOD)  # NEW_BROWSERS, or one known browser
        self.secure = web.base_url.lower().startswith("https://")

    @property
    def password(self) -> str | None:
        """The password that opens the dashboard; None: the dashboard is off."""
        return self.web.admin_password or self.web.api_key or None

    def session(self, request: Request) -> Session | None:
        """The request's valid session, or None; a database that is down raises (the app answers 503)."""
        password = self.password
        cookie = request.cookies.get(SESSION_COOKIE)
        if password is None or not cookie:
            return None
        now = self.now()
        found = read_session(self.web.secret, password, cookie, now)
        if found is None:  # forged, expired or of another password: no database read for it
            return None
        with self.web.db_engine.connect() as conn:
            alive = sessions.session_alive(conn, found.sid, now)
        return found if alive else None

    def open(self, response: Response) -> None:
        """Start a session: its row on the server, its cookie in `response`."""
        password = self.password
        assert password is not None
        now, sid = self.now(), new_sid()
        with self.web.db_engine.begin() as conn:
            sessions.open_session(conn, sid, now, now + SESSION_LIFETIME)
        self.set_cookie(response, SESSION_COOKIE, session_token(self.web.secret, password, now, sid), HOME,
                        SESSION_LIFETIME)
        device = device_token(self.web.secret, password, now)
        self.set_cookie(response, DEVICE_COOKIE, device, f"{HOME}/login", DEVICE_LIFETIME)

    def revoke(self, session: Session) -> None:
        """End a session on the server, for every daemon."""
        with self.web.db_engine.begin() as conn:
            sessions.revoke(conn, session.sid, self.now())

    def account_key(self, request: Request) -> str:
        """Whose allowance a login attempt takes: this known browser's, or that of all new browsers."""
        password = self.password
        device = read_device(self.web.secret, password, request.cookies.get(DEVICE_COOKIE), self.now()) \
            if password is not None else None
        return f"device:{device}" if device else NEW_BROWSERS

    def require(self, request: Request) -> Session | Response:
        """The session, or the answer to give instead: the dashboard is off, or log in first."""
        if self.password is None:
            return disabled()
        found = self.session(request)
        if found is not None:
            return found
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":  # a button pressed after the session ended: back home, not to a POST URL
            wanted = HOME
        target = f"{HOME}/login?next={quote(safe_next(wanted), safe='/')}"
        return RedirectResponse(target, status_code=303, headers=HEADERS)

    async def checked(self, request: Request) -> tuple[Session, dict[str, str]] | Response:
        """For a POST: the session and the form's fields, once the CSRF token is right; else the answer."""
        found = await run_in_threadpool(self.require, request)  # a database read: off the event loop
        if not isinstance(found, Session):
            return found
        fields = await csrf.posted(request)
        if not csrf.valid(self.web.secret, f"session:{found.sid}", fields.get(csrf.FIELD)):
            log("dashboard_csrf_refused", logging.WARNING, path=request.url.path, ip=client_ip(request))
            return forbidden()
        return found, fields

    def set_cookie(self, response: Response, name: str, value: str, path: str, lifetime: timedelta) -> None:
        """Set one of the dashboard's cookies: HttpOnly, SameSite=Strict, Secure on an https site."""
        response.set_cookie(name, value, max_age=int(lifetime.total_seconds()), path=path,
                            secure=self.secure, httponly=True, samesite="strict")


def disabled() -> Response:
    """The answer of every dashboard page while no password is set."""
    return page("disabled", status=503, session=None)


def forbidden() -> Response:
    """The answer to a POST without the right CSRF token: nothing was changed."""
    return page("message", status=403, session=None, title="Forbidden",
                text="This form has expired or did not come from the dashboard. Nothing was changed; "
                     "go back, reload the page and try again.")


def router(web: Web, gate: Gate) -> APIRouter:
    """The login and logout routes."""
    routes = APIRouter(include_in_schema=False)

    def login_form(request: Request, next_path: str, status: int = 200, error: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if len(nonce) != 22 or not nonce.isascii():
            nonce = secrets.token_urlsafe(16)
        response = page("login", status=status, session=None, next=next_path, error=error,
                        csrf=csrf.token(web.secret, f"login:{nonce}"), headers=headers)
        gate.set_cookie(response, LOGIN_COOKIE, nonce, f"{HOME}/login", LOGIN_FORM_LIFETIME)
        return response

    @routes.get(f"{HOME}/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        if gate.password is None:
            return disabled()
        if gate.session(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303, headers=HEADERS)
        return login_form(request, safe_next(next))

    @routes.post(f"{HOME}/login")
    async def login(request: Request) -> Response:
        if gate.password is None:
            return disabled()
        ip = client_ip(request)
        wait = gate.attempts.hit(limits.ip_key(ip))
        if wait:
            log("dashboard_login", logging.WARNING, outcome="limited", ip=ip)
            return page("message", status=429, session=None, title="Too many attempts",
                        text="Too many login attempts from this address; wait a few minutes and try again.",
                        headers={"Retry-After": limits.retry_after(wait)})
        fields = await csrf.posted(request)
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if not nonce or not csrf.valid(web.secret, f"login:{nonce}", fields.get(csrf.FIELD)):
            log("dashboard_login", logging.WARNING, outcome="csrf", ip=ip)
            return forbidden()
        account = gate.account_key(request)
        wait = gate.account.waiting(account)
        if wait:
            log("dashboard_login", logging.WARNING, outcome="limited_account", ip=ip,
                browser="new" if account == NEW_BROWSERS else "known")
            text = _ACCOUNT_LIMITED if account == NEW_BROWSERS else _BROWSER_LIMITED
            return page("message", status=429, session=None, title="Too many attempts", text=text,
                        headers={"Retry-After": limits.retry_after(wait)})
        next_path = safe_next(fields.get("next"))
        given = fields.get("password", "").encode("utf-8")
        password = gate.password
        if password is None or not hmac.compare_digest(given, password.encode("utf-8")):
            gate.account.hit(account)  # only failures count: the owner's logins never use it up
            log("dashboard_login", logging.WARNING, outcome="wrong_password", ip=ip)
            return login_form(request, next_path, status=401, error="Wrong password.")
        response = RedirectResponse(next_path, status_code=303, headers=HEADERS)
        await run_in_threadpool(gate.open, response)
        log("dashboard_login", outcome="ok", ip=ip)
        response.delete_cookie(LOGIN_COOKIE, path=f"{HOME}/login", secure=gate.secure, httponly=True,
                               samesite="strict")
        return response

    @routes.post(f"{HOME}/logout")
    async def logout(request: Request) -> Response:
        found = await gate.checked(request)
        if not isinstance(found, tuple):
            return found
        await run_in_threadpool(gate.revoke, found[0])
        response = RedirectResponse(f"{HOME}/login", status_code=303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE, path=HOME, secure=gate.secure, httponly=True,
                               samesite="strict")
        log("dashboard_logout", ip=client_ip(request))
        return response

    return routes
