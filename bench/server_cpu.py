"""Run a command and print the CPU that PostgreSQL's server processes used while it ran.

    python -m bench.server_cpu python -m bench.send_cpu --database postgresql

The benchmarks time the engine's own process; on PostgreSQL the server's work (its
statements, its triggers) is in other processes, on the same cores. This adds up the user
and system time of every process named `postgres*` from `/proc` before and after the
command, the backends that exited meanwhile included (their time is added to the server's
main process when it reaps them). Linux only; the server must run on this machine. The
command's own output is passed through; the last line is JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def server_cpu_seconds() -> float:
    """User and system CPU seconds of every postgres process now, with their reaped children's."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("postgres"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        ticks += sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Run the command given and print the server's CPU seconds meanwhile."""
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    before = server_cpu_seconds()
    code = subprocess.run(sys.argv[1:], check=False).returncode
    used = server_cpu_seconds() - before
    print(f"PostgreSQL's server processes used {used:.2f} s of CPU")
    print(json.dumps({"server_cpu_s": round(used, 2), "exit_code": code}))
    sys.exit(code)


if __name__ == "__main__":
    main()
