"""The injectable clock: real time, real time N times faster, or frozen for tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the engine what time it is (UTC, aware)."""

    def now(self) -> datetime:
        """The current instant."""
        ...  # pragma: no cover


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The current instant."""
        return datetime.now(UTC)


class ScaledClock:
    """A clock that starts at the real time and runs `scale` times faster (`funnel run --time-scale`)."""

    def __init__(self, scale: float, start: datetime | None = None) -> None:
        self.scale = scale
        self._start = start or datetime.now(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        """The scaled instant."""
        return self._start + timedelta(seconds=(time.monotonic() - self._origin) * self.scale)


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The frozen instant."""
        return self.at

    def advance(self, by: timedelta) -> datetime:
        """Move on by `by`; returns the new instant."""
        self.at += by
        return self.at
