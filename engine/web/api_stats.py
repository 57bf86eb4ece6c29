"""`GET /api/stats`: the funnels' numbers as JSON, behind the admin API's bearer key.

The body is `engine.stats.report.funnel_report`'s dict with each funnel's `broadcasts`
(engine/stats/broadcasts.py), the one `funnel stats --json` prints (docs/stats.md and
docs/broadcasts.md describe every number).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.errors import UnknownFunnelError
from engine.stats.broadcasts import read_report
from engine.stats.report import SINCE_HELP, parse_since
from engine.web.api import PREFIX, UNAUTHORIZED, api_key_required
from engine.web.body import StrictJsonRoute
from engine.web.context import Web


def router(web: Web) -> APIRouter:
    """The /api/stats route."""
    routes = APIRouter(prefix=PREFIX, dependencies=[Depends(api_key_required(web))], responses=UNAUTHORIZED,
                       route_class=StrictJsonRoute)

    @routes.get(
        "/stats",
        summary="Funnel stages, answers, segments, sources, revenue, per-email and per-broadcast numbers",
        responses={
            200: {"description": "the numbers (docs/stats.md)"},
            404: {"description": "no such funnel"},
            422: {"description": f"a bad `since`: {SINCE_HELP}"},
        },
    )
    async def stats(
        funnel: Annotated[str | None, Query(max_length=100, description="one funnel (default: all)")] = None,
        since: Annotated[
            str | None,
            Query(max_length=40, description="signups (stages) and mail and events (steps) from then on: "
                                             "2026-03-01 (midnight UTC) or an ISO 8601 time"),
        ] = None,
    ) -> JSONResponse:
        try:
            start = parse_since(since) if since is not None else None
        except ValueError as error:
            problem = {"loc": ["query", "since"], "msg": str(error), "type": "value_error"}
            return JSONResponse({"detail": [problem]}, status_code=422)
        now = web.clock.now()
        try:
            report: dict[str, Any] = await run_in_threadpool(
                read_report, web.db_engine, web.plans(), funnel, start, now=now
            )
        except UnknownFunnelError as error:
            return JSONResponse({"detail": str(error)}, status_code=404)
        return JSONResponse(report)

    return routes
