"""Waiting for a daemon the benchmarks started to answer /healthz with 200."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_healthy(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, seconds: float
) -> None:
    """Return once `base_url`/healthz says 200; RuntimeError with the daemon's log's end if it
    exits first or takes more than `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the daemon did not start; its log ends:\n{tail}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
