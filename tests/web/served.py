"""A Harness daemon with its real web app served by uvicorn on a loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import uvicorn

from engine.web.app import Health, create_app
from tests.scheduler.harness import Harness


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # pragma: no cover - uvicorn < 0.29 only
        pass


@contextmanager
def serve(harness: Harness) -> Iterator[httpx.Client]:
    """An HTTP client on the harness daemon's web app, served for real on 127.0.0.1."""
    daemon = harness.daemon
    health = Health(daemon.db_engine, lambda: datetime.now(UTC), lambda: datetime.now(UTC), 60.0)
    config = uvicorn.Config(
        create_app(health, daemon.web),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=True,
        forwarded_allow_ips=["127.0.0.1"],
    )
    server = _QuietServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test web server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
