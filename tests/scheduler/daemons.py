"""Real processes for crash and scale tests: `funnel run` daemons and the recording SMTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from engine.project.folder import Project
from engine.scheduler.clock import ScaledClock, clock_mark
from engine.store import meta
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.subscribers.leads import Added, Lead, Proof, add_lead
from tests.support.project import minimal_project

STARTED: list[subprocess.Popen[bytes]] = []  # killed after each test by tests/scheduler/conftest.py


def kill_leftovers() -> None:
    """Kill every daemon a test started and did not stop (a failed assertion on the way)."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def instant_project(folder: Path) -> Path:
    """The minimal funnel with single opt-in: the magnet and the survey email go out at once."""
    project = minimal_project(folder)
    path = project / "sequences" / "minimal.yaml"
    text = path.read_text().replace(
        "  default_magnet: guide\n", "  default_magnet: guide\n  double_opt_in: false\n"
    )
    path.write_text(text)
    return project


def add_subscribers(url: str, project: Path, count: int) -> None:
    """Sign up `count` subscribers (s0000@example.com ...) now, in one transaction."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    plan = Project(project).plan("minimal")
    now = datetime.now(UTC)
    with db_engine.begin() as conn:
        for i in range(count):
            add_lead(conn, plan, Lead(email=f"s{i:04}@example.com"), Proof("import"), now)
    db_engine.dispose()


def add_leads(url: str, project: Path, leads: Sequence[Lead], now: datetime) -> list[Added]:
    """Import `leads` into the minimal funnel at `now` (a fast clock's time, say), in one transaction."""
    db_engine = make_engine(url)
    upgrade(db_engine)
    plan = Project(project).plan("minimal")
    with db_engine.begin() as conn:
        added = [add_lead(conn, plan, lead, Proof("import"), now) for lead in leads]
    db_engine.dispose()
    return added


def start_clock_at(url: str, at: datetime, scale: float) -> ScaledClock:
    """Mark the database with a `--time-scale scale` clock that reads `at` now, and return that clock.

    A daemon started with the same scale joins the marked clock (engine/daemon/wiring.py), so a
    test can put a broadcast's morning a few real seconds ahead: the clock was the real time at
    `since` and has run `scale` times faster, so `since` = real now - (at - real now) / (scale - 1).
    """
    real = datetime.now(UTC)
    clock = ScaledClock(scale, real - (at - real) / (scale - 1))
    db_engine = make_engine(url)
    upgrade(db_engine)
    kept = meta.keep_first(db_engine, "clock", clock_mark(clock), real)
    db_engine.dispose()
    assert kept == clock_mark(clock), f"the database already had a clock: {kept}"
    return clock


@contextmanager
def smtp_server(log: Path, *flags: str) -> Iterator[int]:
    """The recording SMTP server in its own process; yields its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp_server", "--log", str(log), *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready "), line
        yield int(line.split()[1])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def received(log: Path) -> Counter[str]:
    """How many copies of each Message-ID the SMTP server accepted."""
    if not log.exists():
        return Counter()
    copies: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        if line.strip():
            copies[json.loads(line)["message_id"].strip("<>")] += 1
    return copies


def accepted(log: Path) -> list[tuple[str, str]]:
    """Every (recipient, Message-ID) the SMTP server accepted, in order, repeats included."""
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [(line["rcpt"], line["message_id"].strip("<>")) for line in lines]


def start_daemon(
    project: Path, url: str, smtp_port: int, log: Path, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """`funnel run` against `url`, sending to the SMTP server on `smtp_port`; stderr goes to `log`."""
    environment = {
        **os.environ,
        "FUNNEL_DATABASE_URL": url,
        "FUNNEL_TRANSPORT": "smtp",
        "FUNNEL_SMTP_HOST": "127.0.0.1",
        "FUNNEL_SMTP_PORT": str(smtp_port),
        "FUNNEL_SMTP_TLS": "none",
        "FUNNEL_SECRET_KEY": "k" * 32,
        "FUNNEL_BASE_URL": "https://funnel.example",
        "FUNNEL_TICK_SECONDS": "0.1",
        "FUNNEL_SEND_RATE": "5000",
        **env,
    }
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "--project", str(project), "run", "--port", "0", *args],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    STARTED.append(process)
    return process


def actions(log: Path) -> list[str]:
    """The `action` of every JSON log line a daemon wrote."""
    return [json.loads(line)["action"] for line in log.read_text().splitlines() if line.startswith("{")]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition()` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
