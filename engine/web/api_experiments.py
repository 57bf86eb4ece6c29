"""`/api/experiments`: every experiment of the daemon's release with its variants' numbers and decision.

Included in the admin API's router (engine/web/api.py), behind its bearer key. The body is
`funnel experiments --json` (engine/stats/experiments.py), under `experiments`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.errors import UnknownFunnelError
from engine.stats.experiments import experiment_reports
from engine.store.db import snapshot
from engine.web.context import Web


def router(web: Web) -> APIRouter:
    """The /experiments route (the admin API adds its prefix and key)."""
    routes = APIRouter()

    @routes.get(
        "/experiments",
        summary="Each email with variants: per variant its numbers, and the decision",
        responses={200: {"description": "`funnel experiments --json`, under `experiments`"},
                   404: {"description": "no funnel of that id in the release being served"}},
    )
    async def list_experiments(funnel: str | None = None) -> JSONResponse:
        def job() -> list[dict[str, Any]]:
            with snapshot(web.db_engine) as conn:
                return [
                    r.as_json() for r in experiment_reports(conn, web.plans(), [funnel] if funnel else None)
                ]

        try:
            return JSONResponse({"experiments": await run_in_threadpool(job)})
        except UnknownFunnelError as error:
            return JSONResponse({"detail": str(error)}, status_code=404)

    return routes
