"""One `funnel` command run several times in one process: what the command itself costs.

    python -m bench.scale_cli RUNS PROJECT ARGS...

Started by bench/scale.py with the database in FUNNEL_DATABASE_URL. The interpreter and
the engine's modules are loaded once, before the clock starts, so the times are the
command's own work (opening the database, reading, printing), not Python's start-up;
the first run also pays for the modules a command loads lazily. What the command prints
is counted and thrown away. The last line is JSON: {"seconds": [...], "bytes": N}.
"""

from __future__ import annotations

import io
import json
import sys
import time

from engine.cli import main


class Counting(io.TextIOBase):
    """A text stream that only counts what is written to it."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, text: str) -> int:
        """Count `text` (as UTF-8 bytes)."""
        self.count += len(text.encode("utf-8"))
        return len(text)

    def writable(self) -> bool:
        """It takes writes."""
        return True


def run(runs: int, project: str, args: list[str]) -> tuple[list[float], int]:
    """Seconds of each run, and the bytes the last one printed."""
    seconds, printed = [], 0
    real = sys.stdout
    for _ in range(runs):
        sink = Counting()
        sys.stdout = sink
        began = time.perf_counter()
        try:
            main.main(["--project", project, *args], prog_name="funnel", standalone_mode=False)
        finally:
            sys.stdout = real
        seconds.append(time.perf_counter() - began)
        printed = sink.count
    return seconds, printed


if __name__ == "__main__":
    found, size = run(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
    print(json.dumps({"seconds": found, "bytes": size}))
