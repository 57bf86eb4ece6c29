"""Group commit: whatever arrives while a write runs goes together in the next write.

A durable commit costs an fsync, and one thread does a daemon's database work: rather
than one commit per item, each write takes every item waiting when it starts. Two users:
the web writer (engine/web/writer.py: jobs in savepoints, each answered on its own) and
the dispatcher's outcome commit (engine/scheduler/recording.py: a list of delivery updates).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# What `write` says of one item: (True, its result) or (False, the exception it alone raised).
Answer = tuple[bool, Any]
# Writes a batch; one answer per item, in order, or None when every item was written with no
# result of its own. An exception means nothing of the batch was written.
Write = Callable[[list[T]], Awaitable[Sequence[Answer] | None]]


class GroupCommit(Generic[T]):
    """Items submitted while a write runs are written together next, at most `max_batch` at a time."""

    def __init__(self, write: Write[T], max_batch: int | None = None) -> None:
        self.write = write
        self.max_batch = max_batch  # None: every item waiting
        self._pending: list[tuple[T, asyncio.Future[Any]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> Any:
        """The item's result once it is written; its exception, or the batch's, if that failed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            size = self.max_batch or len(self._pending)
            batch, self._pending = self._pending[:size], self._pending[size:]
            try:
                answers = await self.write([item for item, _ in batch])
            except Exception as error:  # nothing of the batch was written; the waiters must not hang
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            if answers is None:
                answers = [(True, None)] * len(batch)
            for (_, future), (ok, value) in zip(batch, answers, strict=True):
                if future.done():  # the waiter went away (a client disconnected)
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
