"""engine/logs.py: the JSON line `log()` writes, through the fast path that skips the caller look-up."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date

import pytest

from engine.logs import LOGGER, log, setup_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    out = io.StringIO()
    setup_logging("info", out)
    try:
        yield out
    finally:
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved[0], saved[1], saved[2]


def test_one_json_line_with_the_fields(stream: io.StringIO) -> None:
    log("queued", step="n1", enrollment=7, when=date(2026, 12, 5), name="Zoë")
    line = json.loads(stream.getvalue())
    assert stream.getvalue().count("\n") == 1
    assert set(line) == {"ts", "level", "action", "step", "enrollment", "when", "name"}
    assert (line["level"], line["action"], line["step"], line["enrollment"]) == ("info", "queued", "n1", 7)
    assert line["when"] == "2026-12-05"  # what JSON cannot hold is written as text
    assert "Zoë" in stream.getvalue()  # not \\u-escaped
    assert line["ts"].endswith("+00:00") and len(line["ts"]) == len("2026-12-05T21:06:45.753+00:00")


def test_below_the_level_writes_nothing(stream: io.StringIO) -> None:
    log("noise", logging.DEBUG, step="n1")
    assert stream.getvalue() == ""


def test_a_record_factory_still_makes_the_record(stream: io.StringIO) -> None:
    """Tools that install a record factory (tracing, say) see the engine's records too."""
    made: list[str] = []
    default = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = default(*args, **kwargs)
        made.append(record.getMessage())
        return record

    logging.setLogRecordFactory(factory)
    try:
        log("sent", step="n1")
    finally:
        logging.setLogRecordFactory(default)
    assert made == ["sent"]
    assert json.loads(stream.getvalue())["action"] == "sent"
