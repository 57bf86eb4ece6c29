"""A log collector for the benchmarks: the engine's stderr is a pipe that another process reads.

    python -m bench.collector FILE      # stdin, line by line, appended to FILE

In production the daemon's stderr is a pipe read by journald, docker or a supervisor, each
line a read of the other end; logging to a file instead skips what a pipe costs the writer
(a wake-up of the reader a write) and the reader's own work, which share the machine's cores.
`engine_logs` starts such a reader and sends the engine's log lines to it, as `funnel run` logs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from engine.logs import LOGGER, setup_logging


@contextmanager
def collector(path: Path) -> Iterator[IO[bytes]]:
    """The writing end of a pipe a collector process reads into `path` (a child's stderr, say)."""
    reader = subprocess.Popen([sys.executable, "-m", "bench.collector", str(path)], stdin=subprocess.PIPE)
    assert reader.stdin is not None
    try:
        yield reader.stdin
    finally:
        reader.stdin.close()
        reader.wait()


@contextmanager
def engine_logs(path: Path | None) -> Iterator[None]:
    """The engine logs at info into a collector writing `path` (None: logging is left as it is),
    through a line-buffered text stream, as the interpreter opens stderr."""
    if path is None:
        yield
        return
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    with collector(path) as pipe, open(pipe.fileno(), "w", buffering=1, closefd=False) as stream:
        setup_logging("info", stream)
        try:
            yield
        finally:
            LOGGER.handlers[0].close()  # the lines still waiting, before the pipe closes
            # Nothing logged afterwards goes to the closed pipe.
            LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved


def main() -> None:
    """Copy stdin to the file line by line until the pipe closes, each line written as it comes."""
    with open(sys.argv[1], "ab", buffering=0) as out:
        for line in sys.stdin.buffer:
            out.write(line)


if __name__ == "__main__":
    main()
