"""The dashboard's login: one password, a signed session cookie, nothing stored on the server.

The password is `admin_password`, else `api_key`; with neither, the dashboard is off. The
session cookie is made and read in session.py. Login attempts are limited per IP address.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from engine.logs import log
from engine.web import limits
from engine.web.context import Web, client_ip
from engine.web.dashboard import csrf
from engine.web.dashboard.render import HEADERS, page
from engine.web.dashboard.session import SESSION_LIFETIME, Session, read_session, session_token

SESSION_COOKIE = "funnel_dashboard"
LOGIN_COOKIE = "funnel_dashboard_login"
LOGIN_FORM_LIFETIME = timedelta(hours=1)
LOGIN_ATTEMPTS = 10  # per IP address and LOGIN_PERIOD: enough for typos, too few to guess a password
LOGIN_PERIOD = 900.0
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
        self.attempts = limits.RateLimit(LOGIN_ATTEMPTS, LOGIN_PERIOD)
        self.secure = web.base_url.lower().startswith("https://")

    @property
    def password(self) -> str | None:
        """The password that opens the dashboard; None: the dashboard is off."""
        return self.web.admin_password or self.web.api_key or None

    def session(self, request: Request) -> Session | None:
        """The request's valid session, or None."""
        password = self.password
        cookie = request.cookies.get(SESSION_COOKIE)
        if password is None or not cookie:
            return None
        return read_session(self.web.secret, password, cookie, self.now())

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
        found = self.require(request)
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
        next_path = safe_next(fields.get("next"))
        given = fields.get("password", "").encode("utf-8")
        password = gate.password
        if password is None or not hmac.compare_digest(given, password.encode("utf-8")):
            log("dashboard_login", logging.WARNING, outcome="wrong_password", ip=ip)
            return login_form(request, next_path, status=401, error="Wrong password.")
        log("dashboard_login", outcome="ok", ip=ip)
        response = RedirectResponse(next_path, status_code=303, headers=HEADERS)
        gate.set_cookie(response, SESSION_COOKIE, session_token(web.secret, password, gate.now()), HOME,
                        SESSION_LIFETIME)
        response.delete_cookie(LOGIN_COOKIE, path=f"{HOME}/login", secure=gate.secure, httponly=True,
                               samesite="strict")
        return response

    @routes.post(f"{HOME}/logout")
    async def logout(request: Request) -> Response:
        found = await gate.checked(request)
        if not isinstance(found, tuple):
            return found
        response = RedirectResponse(f"{HOME}/login", status_code=303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE, path=HOME, secure=gate.secure, httponly=True,
                               samesite="strict")
        log("dashboard_logout", ip=client_ip(request))
        return response

    return routes
