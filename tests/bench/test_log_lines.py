"""bench/log_lines.py runs both ways into a real pipe and ends with its JSON line (no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_it_times_both_ways_and_ends_with_json() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.log_lines", "--lines", "2000", "--rounds", "1"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["lines"] == 2000
    for key in ("each_writer_us", "each_reader_us", "batched_writer_us", "batched_reader_us"):
        assert figures[key] > 0
    assert abs(figures["ratio"] - figures["batched_writer_us"] / figures["each_writer_us"]) < 0.01
