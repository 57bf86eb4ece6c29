"""Structured logs: one JSON line per event, always with an `action` field."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO, cast

LOGGER = logging.getLogger("funnel")
# json.dumps with these options would build an encoder for every line.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
_HEAD = frozenset({"ts", "level", "action"})  # the keys every line begins with
_LEVELS = {level: logging.getLevelName(level).lower()
           for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)}
_ENCODED = {name: _ENCODER.encode(name) for name in _LEVELS.values()}  # '"info"': written as they are
# The fields every line of this process begins with (label_lines): `worker` under --workers N.
_LABEL: dict[str, Any] = {}


def log(action: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event; `fields` become keys of the JSON line."""
    if LOGGER.isEnabledFor(level):
        handler = _only_handler(level)
        if handler is not None:
            handler.put(level, action, fields)
            return
        LOGGER.handle(_record(level, action, fields))


def label_lines(**fields: Any) -> None:
    """Begin every line this process writes from now on with `fields` (none: no label).

    `funnel run --workers N` labels each process's lines with its `worker` number. A line's own
    field of the same name is written instead (the parent logs `worker_started` for worker 2).
    """
    _LABEL.clear()
    _LABEL.update(fields)


def _record(level: int, action: str, fields: dict[str, Any]) -> logging.LogRecord:
    """What LOGGER.log makes, less its look-up of the caller's file and line (a walk up the
    stack that no line of ours prints): the daemon writes two lines an email."""
    return LOGGER.makeRecord(LOGGER.name, level, "", 0, action, (), None, extra={"fields": fields})


def _only_handler(level: int) -> LineHandler | None:
    """The handler a line at `level` goes to when nothing but it would see the line's record.

    That is logging as setup_logging leaves it (one LineHandler, its JsonFormatter, no filter,
    no propagation, the standard records) for an info or debug line: such a line is formatted
    and kept without a LogRecord, about a third less CPU a line. Anything else (a
    warning, a filter, a record factory, pytest's caplog, a handler added) goes through
    logging as usual, and so does every line of a process that did not call setup_logging.
    """
    handlers = LOGGER.handlers
    if level >= logging.WARNING or len(handlers) != 1 or LOGGER.propagate or LOGGER.filters:
        return None
    handler = handlers[0]
    if (type(handler) is not LineHandler or handler.filters or level < handler.level
            or type(handler.formatter) is not JsonFormatter
            or logging.getLogRecordFactory() is not logging.LogRecord):
        return None
    return handler


class JsonFormatter(logging.Formatter):
    """Formats a record as {"ts", "level", "action", ...fields}."""

    def __init__(self) -> None:
        super().__init__()
        # (a whole second, "2026-12-06T01:17:03"): the part of `ts` before its milliseconds, and the
        # second it was written for. One attribute, replaced whole: threads formatting at once (the
        # event loop's lines and the database thread's, LineHandler.put) never pair a second with
        # another second's text.
        self._second_text: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON; values that JSON cannot hold are written as text."""
        fields: dict[str, Any] = getattr(record, "fields", {})
        if record.exc_info:
            fields = {**fields, "error": self.formatException(record.exc_info)}
        level = _LEVELS.get(record.levelno) or record.levelname.lower()
        return self.line(record.created, level, record.getMessage(), fields)

    def line(self, created: float, level: str, action: str, fields: dict[str, Any]) -> str:
        """The line of an event at `created` (seconds since the epoch), as `format` writes a record's.

        The fields are encoded as they are and joined to the line's head, not copied into a
        new dict first (the same text). A field named like a key of the head replaces it, as
        it always did.
        """
        ts = self._ts(created)
        if _LABEL:
            fields = {**_LABEL, **fields}
        if _HEAD.isdisjoint(fields):
            head = (f'{{"ts": "{ts}", "level": {_ENCODED.get(level) or _ENCODER.encode(level)}, '
                    f'"action": {_ENCODER.encode(action)}')
            return head + ", " + _ENCODER.encode(fields)[1:] if fields else head + "}"
        return _ENCODER.encode({"ts": ts, "level": level, "action": action, **fields})

    def _ts(self, created: float) -> str:
        """`created` as isoformat(timespec="milliseconds") in UTC, the date and time written once a second.

        Rounded to the microsecond first, half to even, as datetime.fromtimestamp rounds.
        """
        fraction, whole = math.modf(created)
        second, micro = int(whole), round(fraction * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        cached = self._second_text
        if cached[0] != second:
            cached = self._second_text = (second, datetime.fromtimestamp(second, UTC).isoformat()[:19])
        return f"{cached[1]}.{micro // 1000:03d}+00:00"


LINE_WAIT = 0.1  # seconds an info line may wait in memory before it is written
# A pipe takes a write of up to this many bytes whole (POSIX PIPE_BUF): lines of several
# processes sharing one stderr (funnel run --workers N) never interleave inside a line.
_ATOMIC = 4096


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the formatted lines a few at a time instead of a write (a system call) each.

    An info or debug line waits at most `wait` seconds (a thread writes what waits); a
    warning or an error is written at once, with every line before it; `flush()` and
    `close()` write what waits, and `logging.shutdown` calls them at exit. What a `kill -9`
    can take is the last `wait` seconds of info lines, never a warning or an error: the
    database, not the log, is the record of what was sent. `wait=0` writes each line at once.
    """

    def __init__(self, stream: TextIO, wait: float = LINE_WAIT) -> None:
        super().__init__(stream)
        self.wait = wait
        self._waiting: list[str] = []
        self._due = threading.Event()  # set while a line waits for the writer thread
        # Set by close(): lines are written at once from then on. (Not `_closed`, logging.Handler's.)
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the line (logging.Handler.handle holds the lock); write now if it must not wait."""
        try:
            self._keep(self.format(record), at_once=record.levelno >= logging.WARNING)
        except RecursionError:
            raise
        except Exception:  # logging's rule: a line that cannot be written never stops the caller
            self.handleError(record)

    def put(self, level: int, action: str, fields: dict[str, Any]) -> None:
        """Keep an info or debug line made without a record (`log`, when only this handler sees it).

        The same line, kept and written as `emit` keeps and writes it. Should anything fail, the
        line takes logging's own way instead, which reports it as logging reports a failed line.
        """
        formatter = cast(JsonFormatter, self.formatter)
        try:
            line = formatter.line(time.time(), _LEVELS.get(level) or logging.getLevelName(level).lower(),
                                  action, fields)
        except RecursionError:
            raise
        except Exception:
            self.handle(_record(level, action, fields))
            return
        with self.lock:  # type: ignore[union-attr]
            try:
                self._keep(line, at_once=False)
            except RecursionError:
                raise
            except Exception:
                self.handleError(_record(level, action, fields))

    def _keep(self, line: str, at_once: bool) -> None:
        """Keep a formatted line (the caller holds the lock): written now if `at_once`, if lines do
        not wait (`wait=0`) or once closing; else the writer thread is told a line waits."""
        self._waiting.append(line)
        if at_once or self.wait <= 0 or self._closing.is_set():
            self._write()
        elif len(self._waiting) == 1:
            self._wake_writer()

    def flush(self) -> None:
        """Write every waiting line and flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        """Write what waits; later lines are written at once; the writer thread ends."""
        with self.lock:  # type: ignore[union-attr]
            self._closing.set()  # the writer thread's wait ends now, and so does the thread
            self._write()
            self._due.set()
        super().close()

    def _write(self) -> None:
        """The waiting lines, in writes of at most `_ATOMIC` bytes that end at a line's end."""
        lines, self._waiting = self._waiting, []
        chunk: list[str] = []
        size = 0
        for line in lines:
            length = (len(line) if line.isascii() else len(line.encode())) + 1
            if chunk and size + length > _ATOMIC:
                self._put(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += length
        if chunk:
            self._put(chunk)
        if not lines and self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()

    def _put(self, chunk: list[str]) -> None:
        self.stream.write("\n".join(chunk) + "\n")
        self.stream.flush()

    def _wake_writer(self) -> None:
        """Tell the writer thread a line waits, starting it first if this process has none."""
        if self._writer is None or not self._writer.is_alive():  # not yet, or a fork's child
            self._writer = threading.Thread(target=self._write_waiting, name="log-writer", daemon=True)
            self._writer.start()
        self._due.set()

    def _write_waiting(self) -> None:
        while not self._closing.is_set():
            self._due.wait()
            self._closing.wait(self.wait)  # the lines gather; a close cuts it short
            with self.lock:  # type: ignore[union-attr]
                self._due.clear()
                # A stream closed or broken under it: the lines are dropped, as logging drops them.
                with contextlib.suppress(OSError, ValueError):
                    self._write()


def setup_logging(level: str = "info", stream: TextIO | None = None, wait: float = LINE_WAIT) -> None:
    """Send the engine's logs to `stream` (stderr) as JSON lines, info lines at most `wait` s late."""
    handler = LineHandler(stream or sys.stderr, wait)
    handler.setFormatter(JsonFormatter())
    for old in LOGGER.handlers:
        if isinstance(old, LineHandler):
            old.close()  # what waits is written, and its writer thread ends with it
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False
    # No line carries the thread's or the process's name or id: records need not look them up.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
