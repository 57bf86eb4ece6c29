"""The one thread that does a daemon's database work, awaited from the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


async def in_db_thread(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on the database thread; the event loop keeps serving meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
