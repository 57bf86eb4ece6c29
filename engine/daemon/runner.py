"""`funnel run`: APScheduler drives the ticks, uvicorn serves HTTP, signals stop both cleanly.

This is the only module that imports apscheduler. The scheduler holds one interval
job (the tick), never one job per subscriber: the database knows who is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from engine.daemon.listen import listen
from engine.daemon.pool import WorkerPool
from engine.daemon.wiring import Daemon
from engine.logs import log
from engine.scheduler.clock import scale_of, tick_interval
from engine.scheduler.tick import TickReport
from engine.store.db import shown_url
from engine.web.app import Health, create_app

# A tick that has not finished for this many intervals (plus a margin for a slow
# SMTP server) makes /healthz answer 503.
STALE_TICKS = 10
STALE_MARGIN_SECONDS = 60.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runner owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to the runner."""
        yield


class Runner:
    """Runs a Daemon until SIGTERM or SIGINT; then stops claiming, finishes in-flight sends, exits 0.

    With a `pool` (funnel run --workers N) it starts the extra workers once HTTP serves and
    stops them with itself. A worker's own Runner has `serve_http=False`: it only ticks, and
    reports each finished tick to `on_tick`.
    """

    def __init__(
        self,
        daemon: Daemon,
        sock: socket.socket | None = None,
        *,
        pool: WorkerPool | None = None,
        serve_http: bool = True,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        self.daemon = daemon
        # Bound by `funnel run` before the daemon was built (engine/daemon/listen.py), so that a
        # port in use fails before anything runs; bound in run() when not given.
        self.sock = sock
        self.pool = pool
        self.serve_http = serve_http
        self.on_tick = on_tick
        self.stop = asyncio.Event()
        self.last_tick: datetime | None = None  # real time, for /healthz
        self._current: asyncio.Task[object] | None = None

    async def _tick(self) -> None:
        self._current = asyncio.current_task()
        try:
            report = await self.daemon.ticker.tick()
            self.last_tick = datetime.now(UTC)
            if self.on_tick is not None:
                self.on_tick(report)
        except Exception as error:  # a locked or unreachable database: log, retry next tick
            log("tick_failed", logging.ERROR, error=f"{type(error).__name__}: {error}"[:1000])
        finally:
            self._current = None

    def _scheduler(self, loop: asyncio.AbstractEventLoop) -> AsyncIOScheduler:
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: still running" is normal
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        scheduler.add_job(
            self._tick,
            "interval",
            # tick_seconds of the clock's time: a demo at 3600x ticks every 0.05 s, not every hour.
            seconds=tick_interval(self.daemon.clock, self.daemon.settings.tick_seconds),
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            id="tick",
        )
        return scheduler

    def _started(self) -> None:
        settings = self.daemon.settings
        log(
            "started",
            funnels=sorted(self.daemon.live.current.plans),
            host=settings.host,
            port=settings.port,
            links=settings.links_url,
            transport=settings.transport,
            database=shown_url(self.daemon.db_engine),
            time_scale=scale_of(self.daemon.clock),
            **({"workers": settings.workers} if settings.workers > 1 else {}),
        )

    async def run(self) -> int:
        """Serve until told to stop; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        scheduler = self._scheduler(loop)
        if not self.serve_http:
            scheduler.start()
            self._started()
            await self.stop.wait()
            return await self._shut(scheduler, 0)
        settings = self.daemon.settings
        sock = self.sock or listen(settings.host, settings.port)
        stale_after = settings.tick_seconds * STALE_TICKS + STALE_MARGIN_SECONDS
        pool = self.pool
        health = Health(
            self.daemon.db_engine,
            lambda: self.last_tick,
            lambda: datetime.now(UTC),
            stale_after,
            transport=lambda: self.daemon.transport.state,
            workers=(lambda: pool.health(datetime.now(UTC), stale_after)) if pool is not None else None,
        )
        config = uvicorn.Config(
            create_app(health, self.daemon.web),
            host=settings.host,
            port=settings.port,
            proxy_headers=True,
            forwarded_allow_ips=[ip.strip() for ip in settings.trusted_proxies.split(",") if ip.strip()],
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        stopped = asyncio.create_task(self.stop.wait())
        while not server.started and not serving.done() and not self.stop.is_set():
            await asyncio.sleep(0.01)  # the app's startup, then the socket's accept loop
        if server.started:
            scheduler.start()
            self._started()
            if pool is not None:
                await pool.start()
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        status = 0 if self.stop.is_set() else 1  # the HTTP server ended on its own
        await self._shut(scheduler, status)
        server.should_exit = True
        with contextlib.suppress(SystemExit):
            await serving
        stopped.cancel()
        sock.close()
        self._close()
        log("stopped", status=status)
        return status

    async def _shut(self, scheduler: AsyncIOScheduler, status: int) -> int:
        """Stop claiming here and in every worker, let in-flight sends finish, close the transport."""
        log("stopping", reason="signal" if status == 0 else "http server failed")
        self.daemon.dispatcher.stopping = True
        if scheduler.running:
            scheduler.pause()  # no new tick; shutdown() would cancel the running one mid-send
        waits: list[Awaitable[object]] = []
        if self._current is not None:
            waits.append(self._current)  # finish in-flight sends
        if self.pool is not None:
            # A worker past its lease protects nothing: the others claim its mail again by then.
            waits.append(self.pool.stop(kill_after=self.daemon.settings.lease_seconds))
        await asyncio.gather(*waits, return_exceptions=True)
        if scheduler.running:
            scheduler.shutdown(wait=False)
        await self.daemon.transport.close()
        if not self.serve_http:
            self._close()
            log("stopped", status=status)
        return status

    def _close(self) -> None:
        self.daemon.db_executor.shutdown(wait=True)
        self.daemon.web_executor.shutdown(wait=True)
        self.daemon.db_engine.dispose()
