"""engine/logs.py: the JSON line `log()` writes, through the fast path that skips the caller look-up."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.logs import LOGGER, JsonFormatter, LineHandler, label_lines, log, setup_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    out = io.StringIO()
    setup_logging("info", out, wait=0)  # each line at once: these tests read the line itself
    try:
        yield out
    finally:
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved[0], saved[1], saved[2]


@contextmanager
def _alone() -> Iterator[None]:
    """Only the LineHandler on the logger, as in the daemon: pytest adds its capture handlers to
    every logger that does not propagate, and each of them needs a record of every line."""
    handlers = LOGGER.handlers[:]
    LOGGER.handlers[:] = [handler for handler in handlers if isinstance(handler, LineHandler)]
    try:
        yield
    finally:
        LOGGER.handlers[:] = handlers


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
        with _alone():
            log("sent", step="n1")
    finally:
        logging.setLogRecordFactory(default)
    assert made == ["sent"]
    assert json.loads(stream.getvalue())["action"] == "sent"


def test_a_line_set_up_as_the_daemon_sets_it_is_made_without_a_record(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's info lines skip the LogRecord: the same line, about a third less CPU."""
    def no_record(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("an info line made a LogRecord")

    monkeypatch.setattr(LOGGER, "makeRecord", no_record)
    with _alone():
        log("sent", delivery=3, step="n1")
    line = json.loads(stream.getvalue())
    assert (line["level"], line["action"], line["delivery"], line["step"]) == ("info", "sent", 3, "n1")


def test_a_line_with_no_fields_and_a_field_named_like_the_head(stream: io.StringIO) -> None:
    with _alone():
        log("stopped")
        log("odd", ts="mine", n=1)
    first, second = (json.loads(text) for text in stream.getvalue().splitlines())
    assert set(first) == {"ts", "level", "action"} and first["action"] == "stopped"
    # A field named like a key of the head replaces it.
    assert second == {"ts": "mine", "level": "info", "action": "odd", "n": 1}


def test_a_labelled_process_begins_every_line_with_its_label(stream: io.StringIO) -> None:
    """funnel run --workers N: every line says which worker wrote it, with or without a record; a
    line's own field of the same name is written instead."""
    label_lines(worker=2)
    try:
        with _alone():
            log("sent", delivery=1)  # no record
            log("worker_started", worker=3, pid=9)  # no record; its own `worker`
        log("transport_degraded", logging.WARNING, error="421")  # a record
    finally:
        label_lines()
    first, second, third = (json.loads(text) for text in stream.getvalue().splitlines())
    assert list(first) == ["ts", "level", "action", "worker", "delivery"] and first["worker"] == 2
    assert (second["worker"], second["pid"]) == (3, 9)
    assert (third["worker"], third["error"]) == (2, "421")
    log("stopped")
    assert "worker" not in json.loads(stream.getvalue().splitlines()[-1])


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_whatever_else_would_see_a_record_still_gets_one(stream: io.StringIO) -> None:
    """A filter, a second handler or propagation to the root (pytest's caplog) each see every line."""
    dropped = logging.Filter("not-funnel")  # drops every record of the "funnel" logger
    LOGGER.addFilter(dropped)
    try:
        with _alone():
            log("filtered", delivery=1)
    finally:
        LOGGER.removeFilter(dropped)
    assert stream.getvalue() == ""

    kept = _Kept()
    with _alone():
        LOGGER.addHandler(kept)
        log("two handlers", delivery=2)
    assert [r.getMessage() for r in kept.records] == ["two handlers"]
    assert json.loads(stream.getvalue())["delivery"] == 2

    root = _Kept()
    logging.getLogger().addHandler(root)
    LOGGER.propagate = True
    try:
        with _alone():
            log("propagated", delivery=3)
    finally:
        LOGGER.propagate = False
        logging.getLogger().removeHandler(root)
    assert [r.getMessage() for r in root.records] == ["propagated"]
    assert [json.loads(text)["delivery"] for text in stream.getvalue().splitlines()] == [2, 3]


def test_a_line_that_cannot_be_written_is_reported_as_logging_reports_it(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream fails: logging's handleError gets the line's record; the caller goes on."""
    handler = LOGGER.handlers[0]
    reported: list[str] = []
    monkeypatch.setattr(handler, "handleError", lambda record: reported.append(record.getMessage()))

    def broken(text: str) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(stream, "write", broken)
    with _alone():
        log("sent", delivery=1)
    assert reported == ["sent"]


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.sampled_from(
    [1733450000.9999995, 1733450000.0000005, 1733450000.9995, 1733450000.0005, 0.0]))
def test_the_timestamp_is_isoformat_to_the_millisecond(created: float) -> None:
    """The date and time are written once a second (a cache), the rest as datetime writes them."""
    formatter = JsonFormatter()
    formatter._ts(created - 1.5)  # a cached second that is not this one
    assert formatter._ts(created) == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert formatter._ts(created) == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def test_threads_formatting_at_once_each_get_their_own_second() -> None:
    """The event loop and the database thread format lines at the same time (LineHandler.put, out
    of the handler's lock): the cached second and its text change together, never one without
    the other."""
    formatter, wrong = JsonFormatter(), []
    base = 1733450000.25

    def format_many(offset: int) -> None:
        for number in range(3000):
            created = base + (number + offset) % 3  # three seconds in turn: the cache changes every call
            expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
            if formatter._ts(created) != expected:
                wrong.append(created)

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between any two bytecodes, as they may in the daemon
    try:
        threads = [threading.Thread(target=format_many, args=(offset,)) for offset in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert wrong == []


_KEYS = st.sampled_from(["step", "reply", "ts", "level", "action", "error", "é", 'q"uote'])
_VALUES = (st.none() | st.booleans() | st.integers() | st.text(max_size=8)
           | st.lists(st.integers(), max_size=2) | st.dates())


@given(fields=st.dictionaries(_KEYS, _VALUES, max_size=5), action=st.text(max_size=8), failed=st.booleans())
def test_a_line_is_the_json_of_its_head_and_fields(
    fields: dict[str, object], action: str, failed: bool
) -> None:
    """The head and the fields are encoded apart and joined: the line is still the JSON object of
    the head with the fields over it (a field named like a head key replaces it), then the error."""
    formatter = JsonFormatter()
    exc_info = None
    if failed:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = LOGGER.makeRecord(LOGGER.name, logging.WARNING, "", 0, action, (), exc_info,
                               extra={"fields": fields})
    expected = {"ts": formatter._ts(record.created), "level": "warning", "action": action, **fields}
    if failed:
        expected["error"] = formatter.formatException(exc_info)  # type: ignore[arg-type]
    assert formatter.format(record) == json.dumps(expected, default=str, ensure_ascii=False)


def test_a_level_of_another_name_is_written_as_json_too() -> None:
    """A level a library added by name (any text) is encoded, not pasted into the line."""
    record = LOGGER.makeRecord(LOGGER.name, 27, "", 0, "noticed", (), None, extra={"fields": {"n": 1}})
    record.levelname = 'NOTICE "loud"'
    line = JsonFormatter().format(record)
    assert json.loads(line)["level"] == 'notice "loud"' and json.loads(line)["n"] == 1


class _Writes(io.StringIO):
    """A stream that keeps each write apart, as a pipe receives them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def batched() -> Iterator[_Writes]:
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    out = _Writes()
    setup_logging("info", out, wait=0.05)
    try:
        yield out
    finally:
        LOGGER.handlers[0].close()
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved[0], saved[1], saved[2]


def _actions(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["action"] for line in stream.getvalue().splitlines()]


def test_info_lines_wait_a_moment_and_go_out_in_one_write(batched: _Writes) -> None:
    handler = LOGGER.handlers[0]
    assert isinstance(handler, LineHandler)
    handler.wait = 1.0  # long enough that a slow machine still logs all five first
    started = time.monotonic()
    for number in range(5):
        log("sent", delivery=number)
    assert batched.writes == []  # not yet: they wait for the writer thread
    deadline = started + 20
    while not batched.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.monotonic() - started >= 1.0
    assert len(batched.writes) == 1
    assert [json.loads(line)["delivery"] for line in batched.getvalue().splitlines()] == [0, 1, 2, 3, 4]


def test_a_warning_goes_out_at_once_with_every_line_before_it(batched: _Writes) -> None:
    log("queued", delivery=1)
    log("sent", delivery=1)
    log("transport_degraded", logging.WARNING, error="421")
    assert _actions(batched) == ["queued", "sent", "transport_degraded"]
    assert len(batched.writes) == 1


def test_flush_and_close_write_what_waits(batched: _Writes) -> None:
    log("queued", delivery=1)
    LOGGER.handlers[0].flush()
    assert _actions(batched) == ["queued"]
    log("sent", delivery=1)
    LOGGER.handlers[0].close()
    assert _actions(batched) == ["queued", "sent"]
    log("stopped")  # after close, a line is written at once
    assert _actions(batched)[-1] == "stopped"


def test_each_write_ends_at_a_line_end_and_fits_a_pipe(batched: _Writes) -> None:
    """Lines of several processes sharing one stderr never interleave: a pipe takes a write of up to
    PIPE_BUF (4096) bytes whole, and every write but a single longer line stays under it."""
    for number in range(300):
        log("sent", delivery=number, name="Zoë" * (number % 7))  # some lines are not ASCII
    log("long", text="x" * 5000)
    LOGGER.handlers[0].flush()
    assert len(batched.writes) > 1
    for text in batched.writes:
        assert text.endswith("\n")
        assert len(text.encode()) <= 4096 or text.count("\n") == 1
    deliveries = [json.loads(line).get("delivery") for line in batched.getvalue().splitlines()]
    assert deliveries == [*range(300), None]


def test_a_process_that_exits_writes_what_waits(tmp_path: Path) -> None:
    """logging.shutdown, at the interpreter's exit, flushes the handler: a normal exit loses no line."""
    script = ("from engine.logs import log, setup_logging\n"
              "setup_logging('info', wait=60)\n"
              "for n in range(3): log('sent', delivery=n)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[1])
    assert done.returncode == 0
    assert [json.loads(line)["delivery"] for line in done.stderr.splitlines()] == [0, 1, 2]


def test_logging_set_up_again_writes_what_the_old_handler_held_and_ends_its_thread() -> None:
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    first, second = _Writes(), _Writes()
    try:
        setup_logging("info", first, wait=60)
        log("queued", delivery=1)
        old = LOGGER.handlers[0]
        assert isinstance(old, LineHandler) and old._writer is not None and first.writes == []
        setup_logging("info", second, wait=0)
        assert _actions(first) == ["queued"]  # not left waiting a minute, nor lost
        old._writer.join(5)
        assert not old._writer.is_alive()
        log("sent", delivery=1)
        assert _actions(second) == ["sent"]
    finally:
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved[0], saved[1], saved[2]
