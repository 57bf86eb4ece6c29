"""One tick: pick up edited funnels, decide every due enrollment, then send what is due."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from engine.logs import log
from engine.scheduler.broadcasts import choose_winners, take_audiences
from engine.scheduler.clock import Clock
from engine.scheduler.dbthread import in_db_thread
from engine.scheduler.decide import decide_due
from engine.scheduler.dispatch import Dispatcher
from engine.scheduler.funnels import LiveFunnels
from engine.scheduler.guard import Guard
from engine.sequences.plan import Plan
from engine.stats.metrics import Metrics
from engine.store.db import DbEngine

T = TypeVar("T")

# Deciding rounds per tick, so that a huge backlog of decisions cannot starve sending.
MAX_DECIDE_ROUNDS = 20


@dataclass
class TickReport:
    """What the last tick did, for logs and /healthz."""

    started_at: datetime
    seconds: float
    decided: int
    queued: int
    attempted: int


class Ticker:
    """Runs ticks; the runner calls `tick` on a schedule, tests call it directly."""

    def __init__(
        self,
        db_engine: DbEngine,
        live: LiveFunnels,
        dispatcher: Dispatcher,
        clock: Clock,
        db_executor: Executor,
        batch_size: int,
        message_id_domain: str | None = None,
        metrics: Metrics | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.db_engine = db_engine
        self.live = live
        self.dispatcher = dispatcher
        self.clock = clock
        self.db_executor = db_executor
        self.batch_size = batch_size
        self.message_id_domain = message_id_domain
        self.last: TickReport | None = None
        self.metrics = metrics  # tick durations for /metrics
        self.guard = guard  # the guardrail check, every guardrail_seconds
        self.held_told: set[tuple[str, str]] = set()  # the held broadcasts it has logged

    def _domain(self, plan: Plan) -> str:
        if self.message_id_domain:
            return self.message_id_domain
        return plan.sender_parts[1].rpartition("@")[2] or "localhost"

    async def _decide(self) -> tuple[int, int]:
        """Rounds of deciding until nothing more is due (or MAX_DECIDE_ROUNDS): (claimed, queued)."""
        decided = queued = 0
        for _ in range(MAX_DECIDE_ROUNDS):
            if self.dispatcher.stopping:
                break
            round_ = await in_db_thread(
                self.db_executor,
                decide_due,
                self.db_engine,
                self.live.current,
                self.clock.now(),
                self.batch_size,
                self._domain,
            )
            decided += round_.claimed
            queued += round_.queued
            if round_.claimed < self.batch_size:
                break
        return decided, queued

    async def _or_log(self, failed: str, fn: Callable[..., T], *args: Any) -> T | None:
        """`fn(*args)` on the database thread; None, and an error line `failed`, if it raised (a
        locked database: the next tick goes on where this one stopped; sending goes on now)."""
        try:
            return await in_db_thread(self.db_executor, fn, *args)
        except Exception as error:
            log(failed, logging.ERROR, error=f"{type(error).__name__}: {error}"[:500])
            return None

    async def tick(self) -> TickReport:
        """Reload edited funnels, decide due enrollments, send due deliveries."""
        started, began = self.clock.now(), time.perf_counter()
        await in_db_thread(self.db_executor, self.live.reload_if_changed)
        decided, queued = await self._decide()
        # After deciding: those who signed up or answered just before a broadcast's first moment
        # are in their stage and segment when its audience is taken; the recipients it is due
        # to now are decided at once, not a tick later.
        taken = await self._or_log("broadcast_take_failed", partial(take_audiences, told=self.held_told),
                                   self.db_engine, self.live.current, self.clock.now())
        chosen = await self._or_log("experiment_decide_failed", choose_winners, self.db_engine,
                                    self.live.current, self.clock.now())
        if taken or chosen:
            more, more_queued = await self._decide()
            decided, queued = decided + more, queued + more_queued
        if self.guard is not None and self.guard.due():  # judged again next time if it fails
            await self._or_log("guardrail_check_failed", self.guard.run, self.clock.now())
        attempted = await self.dispatcher.dispatch()
        report = TickReport(started, time.perf_counter() - began, decided, queued, attempted)
        self.last = report
        if self.metrics is not None:
            self.metrics.tick_finished(report.seconds)
        if decided or attempted:
            log("tick", decided=decided, queued=queued, attempted=attempted, seconds=round(report.seconds, 4))
        return report
