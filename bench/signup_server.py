"""The daemon as `funnel run` runs it, plus two routes for bench/signup.py, in a process of its own.

    python -m bench.signup_server PROJECT DATABASE_URL PORT

The real Runner serves the real app: APScheduler ticks every second and sends to the
outbox, uvicorn serves `create_app(health, daemon.web)`. The only changes, for the
benchmark: the per-IP signup limit is lifted (every signup comes from 127.0.0.1), the
app gets `POST /bare` (200, nothing else, matched first: the floor for any route of this
server) and `GET /bench/ticks` (what the ticks did and how many signups shared each
commit of the web writer), and the ticks and commits are counted.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.responses import Response

import engine.daemon.runner as runner
from engine.config import Settings
from engine.daemon import heap
from engine.daemon.wiring import build_daemon
from engine.logs import setup_logging
from engine.scheduler.tick import TickReport
from engine.web.app import Health
from engine.web.app import create_app as real_create_app
from engine.web.context import Web
from engine.web.writer import Job

SETTINGS = {
    "secret_key": "bench-" + "b" * 32,
    "base_url": "https://funnel.example",
    # One client address sends every signup of the benchmark; the default (20 an hour) would 429.
    "signup_limit_per_ip": 1_000_000_000,
}


def main() -> None:
    """Build the daemon, add the benchmark's routes, run until SIGTERM."""
    project, url, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    settings = Settings.model_validate({**SETTINGS, "database_url": url, "port": port})
    setup_logging(settings.log_level)  # as `funnel run`: a JSON line per signup, to stderr
    daemon = build_daemon(settings, project)
    ticks = {"started": 0, "finished": 0, "decided": 0, "queued": 0, "attempted": 0}
    tick = daemon.ticker.tick

    async def counted_tick() -> TickReport:
        ticks["started"] += 1
        report = await tick()
        ticks["finished"] += 1
        for key in ("decided", "queued", "attempted"):
            ticks[key] += getattr(report, key)
        return report

    daemon.ticker.tick = counted_tick  # type: ignore[method-assign]
    # How many signups share each durable commit of the web writer (web/writer.py).
    write = daemon.web.writer._write
    commits = {"commits": 0, "jobs": 0}

    def counted_write(jobs: list[Job]) -> list[tuple[bool, Any]]:
        outcomes = write(jobs)
        commits["commits"] += 1
        commits["jobs"] += len(jobs)
        return outcomes

    daemon.web.writer._write = counted_write  # type: ignore[method-assign]

    def create_app(health: Health, web: Web | None = None) -> FastAPI:
        app = real_create_app(health, web)

        @app.post("/bare", include_in_schema=False)
        async def bare() -> Response:
            return Response(status_code=200)

        # First of the app's routes, as /subscribe nearly is (second): appended last, every
        # request to it walked FastAPI 0.165's matching through all the other routes and
        # included routers (about 0.05 ms of CPU a request), which /subscribe does not pay.
        first = app.router.routes.pop()
        assert getattr(first, "path", None) == "/bare", first
        app.router.routes.insert(0, first)

        @app.get("/bench/ticks", include_in_schema=False)
        async def tick_counts() -> JSONResponse:
            return JSONResponse({**ticks, **commits})

        return app

    runner.create_app = create_app  # type: ignore[attr-defined]  # the Runner builds its app by this name
    heap.settle()  # as funnel run does once its daemon is built
    sys.exit(asyncio.run(runner.Runner(daemon).run()))


if __name__ == "__main__":
    main()
