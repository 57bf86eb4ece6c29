"""Daemon processes a test started never outlive it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scheduler.daemons import kill_leftovers


@pytest.fixture(autouse=True)
def _no_leftover_daemons() -> Iterator[None]:
    yield
    kill_leftovers()
