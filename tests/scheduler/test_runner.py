"""The runner keeps going when a tick fails, and says so in the log."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import sqlalchemy as sa

from engine.daemon.runner import Runner
from engine.logs import LOGGER, setup_logging


class _FailingTicker:
    async def tick(self) -> None:
        raise sa.exc.OperationalError("UPDATE enrollment ...", {}, Exception("database is locked"))


class _Daemon:
    ticker = _FailingTicker()


def test_a_failing_tick_is_logged_and_does_not_stop_the_runner() -> None:
    stream = io.StringIO()
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    setup_logging("info", stream, wait=0)
    try:
        daemon: Any = _Daemon()
        runner = Runner(daemon)
        asyncio.run(runner._tick())
        asyncio.run(runner._tick())
    finally:
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["action"] for line in lines] == ["tick_failed", "tick_failed"]
    assert lines[0]["level"] == "error" and "database is locked" in lines[0]["error"]
    assert runner.last_tick is None  # /healthz turns stale when ticks keep failing
