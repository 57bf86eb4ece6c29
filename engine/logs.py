"""Structured logs: one JSON line per event, always with an `action` field."""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER = logging.getLogger("funnel")
# json.dumps with these options would build an encoder for every line.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
_HEAD = frozenset({"ts", "level", "action"})  # the keys every line begins with
_LEVELS = {level: logging.getLevelName(level).lower()
           for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)}
_ENCODED = {name: _ENCODER.encode(name) for name in _LEVELS.values()}  # '"info"': written as they are


def log(action: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event; `fields` become keys of the JSON line."""
    if LOGGER.isEnabledFor(level):
        # What LOGGER.log does, less its look-up of the caller's file and line (a walk up the
        # stack that no line of ours prints): the daemon writes two lines an email.
        record = LOGGER.makeRecord(LOGGER.name, level, "", 0, action, (), None, extra={"fields": fields})
        LOGGER.handle(record)


class JsonFormatter(logging.Formatter):
    """Formats a record as {"ts", "level", "action", ...fields}."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1  # the whole second `_prefix` was written for
        self._prefix = ""  # "2026-12-06T01:17:03", the part of `ts` before its milliseconds

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON; values that JSON cannot hold are written as text.

        The fields are encoded as they are and joined to the line's head, not copied into a
        new dict first (the same text). A field named like a key of the head replaces it, as
        it always did.
        """
        fields: dict[str, Any] = getattr(record, "fields", {})
        if record.exc_info:
            fields = {**fields, "error": self.formatException(record.exc_info)}
        ts, level = self._ts(record.created), _LEVELS.get(record.levelno) or record.levelname.lower()
        if _HEAD.isdisjoint(fields):
            head = (f'{{"ts": "{ts}", "level": {_ENCODED.get(level) or _ENCODER.encode(level)}, '
                    f'"action": {_ENCODER.encode(record.getMessage())}')
            return head + ", " + _ENCODER.encode(fields)[1:] if fields else head + "}"
        return _ENCODER.encode({"ts": ts, "level": level, "action": record.getMessage(), **fields})

    def _ts(self, created: float) -> str:
        """`created` as isoformat(timespec="milliseconds") in UTC, the date and time written once a second.

        Rounded to the microsecond first, half to even, as datetime.fromtimestamp rounds.
        """
        fraction, whole = math.modf(created)
        second, micro = int(whole), round(fraction * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).isoformat()[:19]
        return f"{self._prefix}.{micro // 1000:03d}+00:00"


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send the engine's logs to `stream` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False
    # No line carries the thread's or the process's name or id: records need not look them up.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
