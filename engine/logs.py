"""Structured logs: one JSON line per event, always with an `action` field."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER = logging.getLogger("funnel")
# json.dumps with these options would build an encoder for every line.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def log(action: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event; `fields` become keys of the JSON line."""
    if LOGGER.isEnabledFor(level):
        # What LOGGER.log does, less its look-up of the caller's file and line (a walk up the
        # stack that no line of ours prints): the daemon writes two lines an email.
        record = LOGGER.makeRecord(LOGGER.name, level, "", 0, action, (), None, extra={"fields": fields})
        LOGGER.handle(record)


class JsonFormatter(logging.Formatter):
    """Formats a record as {"ts", "level", "action", ...fields}."""

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON; values that JSON cannot hold are written as text."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "action": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return _ENCODER.encode(line)


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send the engine's logs to `stream` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False
