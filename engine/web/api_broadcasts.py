"""`/api/broadcasts`: the broadcasts of the daemon's release, their numbers, scheduling and cancelling.

Included in the admin API's router (engine/web/api.py), behind its bearer key. The bodies
are `funnel broadcast list --json` and `funnel broadcast stats --json` (engine/stats/broadcasts.py).
The daemon serves its last good release, so a broadcast here is one whose files checked;
a broadcast file with errors is not in it, and is a 404 that says to run `funnel validate`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.logs import log
from engine.sequences.plan import BroadcastPlan
from engine.stats import broadcasts as numbers
from engine.store import broadcasts as calendar
from engine.store.db import DbConnection, snapshot
from engine.web.context import Web

BroadcastId = Annotated[str, PathParam(max_length=100, description="the file's `broadcast:` id")]
_UNKNOWN = {"description": "no broadcast with this id in the daemon's release"}
_CONFLICT = {"description": "the calendar refuses: it was cancelled, or is not scheduled"}


def router(web: Web) -> APIRouter:
    """The /broadcasts routes (the admin API adds its prefix and key)."""
    routes = APIRouter()

    def found(broadcast_id: str) -> BroadcastPlan | JSONResponse:
        try:
            return numbers.find(web.plans(), broadcast_id)[1]
        except numbers.UnknownBroadcastError as error:
            detail = f"{error} (a file with errors is not in the daemon's release: run funnel validate)"
            return JSONResponse({"detail": detail}, status_code=404)

    def read(broadcast: BroadcastPlan) -> dict[str, Any]:
        with snapshot(web.db_engine) as conn:
            return numbers.numbers(conn, broadcast)

    @routes.get("/broadcasts", summary="Every broadcast with its state, recipients and what was sent so far",
                responses={200: {"description": "`funnel broadcast list --json`, under `broadcasts`"}})
    async def list_broadcasts() -> JSONResponse:
        def job() -> list[dict[str, Any]]:
            with snapshot(web.db_engine) as conn:
                return numbers.listing(conn, web.plans())

        return JSONResponse({"broadcasts": await run_in_threadpool(job)})

    @routes.get("/broadcasts/{broadcast_id}", summary="One broadcast's numbers (broadcast stats --json)",
                responses={200: {"description": "its numbers (docs/broadcasts.md)"}, 404: _UNKNOWN})
    async def get_broadcast(broadcast_id: BroadcastId) -> JSONResponse:
        which = found(broadcast_id)
        if isinstance(which, JSONResponse):
            return which
        return JSONResponse(await run_in_threadpool(read, which))

    @routes.post("/broadcasts/{broadcast_id}/schedule", summary="Put a broadcast on the calendar",
                 responses={200: {"description": "`scheduled`: false if it already was; its numbers"},
                            404: _UNKNOWN, 409: _CONFLICT, 422: {"description": "its time has passed"}})
    async def schedule(broadcast_id: BroadcastId) -> JSONResponse:
        which = found(broadcast_id)
        if isinstance(which, JSONResponse):
            return which
        broadcast = which
        now = web.clock.now()

        def job(conn: DbConnection) -> bool | calendar.CalendarError:
            try:
                return calendar.schedule(conn, broadcast, None, now, "api")
            except calendar.CalendarError as error:
                return error

        done = await web.writer.run(job)
        if isinstance(done, calendar.CalendarError):
            status = 422 if isinstance(done, calendar.TooLate) else 409
            return JSONResponse({"detail": str(done)}, status_code=status)
        if done:
            log("broadcast_scheduled", broadcast=broadcast.id, funnel=broadcast.funnel, by="api")
        return JSONResponse({"scheduled": done, "broadcast": await run_in_threadpool(read, broadcast)})

    @routes.post("/broadcasts/{broadcast_id}/cancel", summary="Cancel a scheduled broadcast",
                 responses={200: {"description": "the recipients and queued emails it stopped; its numbers"},
                            404: _UNKNOWN, 409: _CONFLICT})
    async def cancel(broadcast_id: BroadcastId) -> JSONResponse:
        which = found(broadcast_id)
        if isinstance(which, JSONResponse):
            return which
        broadcast = which
        now = web.clock.now()

        def job(conn: DbConnection) -> calendar.Cancelled | str:
            try:
                return calendar.cancel(conn, broadcast.id, now, "api")
            except calendar.CalendarError as error:
                return str(error)

        stopped = await web.writer.run(job)
        if isinstance(stopped, str):
            return JSONResponse({"detail": stopped}, status_code=409)
        if not stopped.already:
            log("broadcast_cancelled", broadcast=broadcast.id, by="api", recipients=stopped.recipients,
                deliveries=stopped.deliveries)
        counts = {"recipients": stopped.recipients, "deliveries": stopped.deliveries}
        after = await run_in_threadpool(read, broadcast)
        return JSONResponse({"cancelled": counts, "broadcast": after})

    return routes
