"""The HTTP side of the daemon (FastAPI): `create_app` builds it from parts handed in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from engine.logs import log
from engine.mail.transport import TransportState
from engine.stats.metrics import CONTENT_TYPE, Metrics
from engine.store.db import UNAVAILABLE_ERRORS, DbEngine, DbError, Unavailable, ping
from engine.web import api, api_stats, dashboard, email_links, signup, webhooks
from engine.web.body import BodyLimit
from engine.web.context import Web
from engine.web.pages import SECURITY_HEADERS
from engine.web.slashes import slash_redirects


@dataclass(frozen=True)
class Health:
    """What /healthz reports: the database answers, ticks keep coming, mail can leave."""

    db_engine: DbEngine
    last_tick: Callable[[], datetime | None]  # real time of the last finished tick
    now: Callable[[], datetime]
    stale_after_seconds: float
    transport: Callable[[], TransportState] | None = None  # None: not reported (no sending here)
    # funnel run --workers N: the extra workers' check ("ok", "1 of 2 alive", "stale: ...") and counts
    workers: Callable[[], tuple[str, dict[str, object]]] | None = None


def create_app(health: Health, web: Web | None = None) -> FastAPI:
    """The daemon's web application: health always, the public and admin routes given `web`."""
    app = FastAPI(
        title="funnel-engine",
        summary="Signup forms, email links and the admin API of a funnel-engine daemon",
        docs_url=None,
        redoc_url=None,
    )
    # Starlette's slash redirect writes the request's Host into Location; ours is relative.
    app.router.redirect_slashes = False
    app.router.default = slash_redirects(app.router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the whole input back; a message per field is enough.
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:300],
                   "type": str(e.get("type", ""))} for e in error.errors()[:50]]
        return JSONResponse({"detail": detail}, status_code=422)

    async def unreadable(request: Request, error: Exception) -> Response:
        # A read in a route (the admin API's lists) met a database that is down, locked or cut off.
        reason = f"{type(error).__name__}: {error}"[:500]
        log("read_failed", logging.ERROR, path=request.url.path, error=reason)
        return await unavailable(request, Unavailable())

    for error_class in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_class, unreadable)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, error: Unavailable) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "the database is unavailable; try again"}, status_code=503,
                                headers={"Retry-After": "30"})
        return Response("The service is busy; please try again in a minute.", status_code=503,
                        media_type="text/plain", headers={**SECURITY_HEADERS, "Retry-After": "30"})

    if web is not None:
        app.include_router(signup.router(web))
        app.include_router(email_links.router(web))
        app.include_router(api.router(web))
        app.include_router(dashboard.router(web))
        app.include_router(webhooks.router(web))
        app.include_router(api_stats.router(web))

    # Outermost last: the API key is checked before any body is read, then no body is
    # read past its cap (the largest a route takes is a webhook's).
    app.add_middleware(BodyLimit, limit=webhooks.MAX_BODY, limits={api.PREFIX + "/": api.MAX_BODY})
    if web is not None:
        app.add_middleware(api.KeyGate, web=web)

    # Without the daemon's parts (web is None) the page still shows the database gauges.
    scraped = web.metrics if web is not None and web.metrics else Metrics(health.db_engine, health.now)

    @app.get(
        "/metrics",
        summary="Counters and queue gauges in Prometheus text format (docs/operations.md, Metrics)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format 0.0.4"}},
    )
    def metrics() -> Response:
        return Response(scraped.render(), media_type=CONTENT_TYPE)

    @app.get(
        "/healthz",
        summary="Liveness and readiness of the daemon: database, scheduler and mail transport",
        description="200 when every check is ok; 503 when one fails, the transport's degradation "
        "included (an uptime check alerts). `?exclude=transport` leaves the transport out of the "
        "status code, for a load balancer: every daemon shares the SMTP server, and signups are "
        "kept while it is down (docs/operations.md, Health).",
        responses={503: {"description": "A check failed; the body says which"}},
    )
    def healthz(exclude: Annotated[list[Literal["transport"]] | None, Query(max_length=1)] = None,
                ) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            ping(health.db_engine)
            checks["database"] = "ok"
        except DbError as error:
            checks["database"] = f"error: {type(error).__name__}"
        last = health.last_tick()
        if last is None:
            checks["scheduler"] = "starting"
        else:
            age = (health.now() - last).total_seconds()
            stale = age > health.stale_after_seconds
            checks["scheduler"] = f"stale: last tick {age:.0f}s ago" if stale else "ok"
        body: dict[str, object] = {"status": "ok", "checks": checks}
        healthy = checks["database"] == "ok" and not checks["scheduler"].startswith("stale")
        if health.transport is not None:
            state = health.transport()
            checks["transport"] = state.status
            body["transport"] = _transport(state)
            if not state.ok:
                body["status"] = "degraded"
                # 503, so that an uptime check alerts: mail is not leaving (docs/operations.md).
                healthy = healthy and "transport" in (exclude or ())
        if health.workers is not None:
            checks["workers"], body["workers"] = health.workers()
            healthy = healthy and not checks["workers"].startswith("stale")
        if checks["database"] != "ok" or any(c.startswith("stale") for c in checks.values()):
            body["status"] = "unhealthy"
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app


def _transport(state: TransportState) -> dict[str, str]:
    """The transport's part of /healthz: its status, and while degraded the last error and since when."""
    if state.ok:
        return {"status": "ok"}
    since = state.since.isoformat(timespec="seconds") if state.since else ""
    return {"status": "degraded", "error": state.error, "since": since}
