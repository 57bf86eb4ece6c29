"""`funnel run --workers 2`: a real daemon and its extra worker, an aiosmtpd sink, SQLite and PostgreSQL.

Signups over HTTP get their mail exactly once (Message-IDs counted at the sink), SIGTERM stops
both processes with status 0, a worker killed with -9 is restarted and its claimed mail goes
out once its lease runs out, and a parent killed with -9 takes its workers with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from engine.config import Settings
from engine.daemon.pool import WorkerPool
from engine.store import tallies
from engine.store.db import make_engine
from engine.store.tables import DELIVERY
from engine.web.app import Health, create_app
from tests.scheduler.daemons import (
    add_subscribers,
    instant_project,
    kill_leftovers,
    received,
    smtp_server,
    start_daemon,
    wait_for,
)
from tests.support.databases import postgres_database

SIGNUPS = 150  # two emails each: the magnet, then the survey
CONNECTIONS = 4  # per process
WORKER_ENV = {
    "FUNNEL_BATCH_SIZE": "20",  # small claims, so that both processes get a share
    "FUNNEL_SMTP_CONNECTIONS": str(CONNECTIONS),
    "FUNNEL_SIGNUP_LIMIT_PER_IP": "100000",
    "FUNNEL_LEASE_SECONDS": "3",  # a killed worker's claims come back within seconds
}


@pytest.fixture(autouse=True)
def _no_leftover_daemons() -> Iterator[None]:
    yield
    kill_leftovers()


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'funnel.db'}"
    else:
        with postgres_database() as url:
            yield url


def _lines(log: Path, action: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if action is None or line["action"] == action]


def _port(log: Path) -> int:
    wait_for(lambda: _lines(log, "started"), 60, "the daemon to start")
    return int(_lines(log, "started")[0]["port"])


def _worker_pids(log: Path) -> list[int]:
    """The pids of worker 2, in the order they were started."""
    return [line["pid"] for line in _lines(log, "worker_started") if line["worker"] == 2]


def _gone(pid: int) -> bool:
    """No such process, or a zombie (exited; reaping an orphan is init's business, not ours)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def _sending(url: str) -> set[int]:
    db_engine = make_engine(url)
    with db_engine.connect() as conn:
        ids = set(conn.execute(sa.select(DELIVERY.c.id).where(DELIVERY.c.status == "sending")).scalars())
    db_engine.dispose()
    return ids


def _kill_holding(pid: int, url: str) -> set[int]:
    """SIGKILL the worker `pid` while it holds claimed mail; the deliveries it held.

    The worker is frozen (SIGSTOP) for 1.5 s, shorter than the 3 s lease: deliveries still
    `sending` at both ends of the pause are its own (the first process records its sends in
    milliseconds). Holding none, it is let go on and tried again a moment later.
    """
    for _ in range(50):
        os.kill(pid, signal.SIGSTOP)
        before = _sending(url)
        time.sleep(1.5)
        held = before & _sending(url)
        if held:
            os.kill(pid, signal.SIGKILL)
            # A worker frozen inside its SQLite write kept the first process from recording its
            # own sends meanwhile; freed by the kill, it does so in milliseconds, while the dead
            # worker's claims stay `sending` until their 3 s lease runs out.
            time.sleep(0.5)
            return held & _sending(url)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.1)
    raise AssertionError("worker 2 never held claimed mail when looked at: the test would prove nothing")


def _rows(url: str) -> list[tuple[str, str]]:
    db_engine = make_engine(url)
    with db_engine.connect() as conn:
        rows = [(m, s) for m, s in conn.execute(sa.select(DELIVERY.c.message_id, DELIVERY.c.status))]
    db_engine.dispose()
    return rows


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_signups_over_http_get_their_mail_once_from_both_processes_and_sigterm_stops_both(
    tmp_path: Path, kind: str
) -> None:
    project = instant_project(tmp_path / "project")
    server_log, log = tmp_path / "received.jsonl", tmp_path / "daemon.log"
    with _database(kind, tmp_path) as url, smtp_server(server_log) as smtp_port:
        daemon = start_daemon(project, url, smtp_port, log, "--workers", "2", **WORKER_ENV)
        base = f"http://127.0.0.1:{_port(log)}"
        with httpx.Client(base_url=base, timeout=30) as http:
            wait_for(lambda: http.get("/healthz").json()["workers"]["ticking"] == 2, 60, "worker 2 to tick")
            for i in range(SIGNUPS):
                answer = http.post("/subscribe", json={"email": f"w{i:04}@example.com", "funnel": "minimal"})
                assert answer.status_code == 201, answer.text
            wait_for(lambda: sum(received(server_log).values()) >= 2 * SIGNUPS, 120, "every message")
            health = http.get("/healthz")

            def sent_metric() -> list[str]:
                return [line for line in http.get("/metrics").text.splitlines()
                        if line.startswith('funnel_sends_total{outcome="sent"}')]

            # The worker reports its counters when its tick ends, a moment after the sink got the mail.
            expected = [f'funnel_sends_total{{outcome="sent"}} {2 * SIGNUPS}']
            wait_for(lambda: sent_metric() == expected, 30, "every send counted in /metrics")
            time.sleep(0.5)
            sends = sent_metric()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        rows = _rows(url)
        # Two processes wrote at once (signups, claims, outcomes): the stats tallies their
        # triggers kept still equal a recount from the rows.
        db_engine = make_engine(url)
        with db_engine.connect() as conn:
            assert tallies.differences(conn) == []
        db_engine.dispose()
    assert health.status_code == 200
    assert health.json()["checks"]["workers"] == "ok"
    assert health.json()["workers"] == {"processes": 2, "alive": 2, "ticking": 2, "restarts": 0}
    copies = received(server_log)
    assert len(rows) == 2 * SIGNUPS and {status for _, status in rows} == {"sent"}
    assert sorted(copies) == sorted(m for m, _ in rows)
    assert max(copies.values()) == 1, "a message was sent twice"
    sent = _lines(log, "sent")
    by_worker = {n: sum(1 for line in sent if line.get("worker") == n) for n in (1, 2)}
    assert sum(by_worker.values()) == 2 * SIGNUPS and all(by_worker.values()), by_worker
    # The parent's /metrics counts what its worker sent too (reported after each of its ticks), once.
    assert sends == [f'funnel_sends_total{{outcome="sent"}} {2 * SIGNUPS}'], sends
    stopped = {line["worker"]: line["status"] for line in _lines(log, "stopped")}
    assert stopped == {1: 0, 2: 0}
    assert all(_gone(pid) for pid in _worker_pids(log))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_worker_killed_mid_send_is_restarted_and_its_claimed_mail_goes_out(
    tmp_path: Path, kind: str
) -> None:
    project = instant_project(tmp_path / "project")
    server_log, log = tmp_path / "received.jsonl", tmp_path / "daemon.log"
    subscribers = 1500
    with _database(kind, tmp_path) as url, smtp_server(server_log) as smtp_port:
        add_subscribers(url, project, subscribers)
        daemon = start_daemon(project, url, smtp_port, log, "--workers", "2", **WORKER_ENV)
        _port(log)
        # Early in the run, while most of the mail is still to go: at 100 sends a loaded machine
        # sometimes had sent it all before the first freeze, and nothing was left to hold.
        wait_for(lambda: sum(1 for line in _lines(log, "sent") if line.get("worker") == 2) >= 20, 120,
                 "worker 2 to send")
        [first] = _worker_pids(log)
        held = _kill_holding(first, url)
        wait_for(lambda: len(_worker_pids(log)) == 2, 30, "worker 2 to be started again")
        wait_for(lambda: sum(received(server_log).values()) >= 2 * subscribers, 180, "every message")
        wait_for(lambda: {s for _, s in _rows(url)} == {"sent"}, 60, "every delivery recorded")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        rows = _rows(url)
    [exited] = _lines(log, "worker_exited")
    assert (exited["worker"], exited["status"], exited["signal"]) == (2, -9, "SIGKILL")
    copies = received(server_log)
    assert len(rows) == 2 * subscribers and sorted(copies) == sorted(m for m, _ in rows)  # nothing lost
    # Mail the killed worker had handed to the server but not recorded yet goes out again when its
    # lease runs out: at most one per connection it held (docs/delivery.md); none otherwise.
    assert sum(copies.values()) - len(copies) <= CONNECTIONS
    assert held <= {line["delivery"] for line in _lines(log, "recovered")}  # taken over, not lost
    assert _gone(first) and all(_gone(pid) for pid in _worker_pids(log))


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    project = instant_project(tmp_path / "project")
    server_log, log = tmp_path / "received.jsonl", tmp_path / "daemon.log"
    with smtp_server(server_log) as smtp_port:
        daemon = start_daemon(project, f"sqlite:///{tmp_path / 'funnel.db'}", smtp_port, log,
                              "--workers", "3", **WORKER_ENV)
        _port(log)
        wait_for(lambda: len({line["worker"] for line in _lines(log, "started")}) == 3, 60, "3 workers")
        pids = [line["pid"] for line in _lines(log, "worker_started")]
        daemon.kill()
        daemon.wait(10)
        began = time.monotonic()
        try:
            wait_for(lambda: all(_gone(pid) for pid in pids), 30, "the workers to notice and stop")
        finally:  # orphans nobody else would stop
            for pid in pids:
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)
    assert time.monotonic() - began < 30
    gone = _lines(log, "parent_gone")
    assert sorted(line["worker"] for line in gone) == [2, 3]
    stopped = {line["worker"]: line["status"] for line in _lines(log, "stopped")}
    assert stopped == {2: 0, 3: 0}


# Stand-in workers: one that reads its order and exits 3 at once, one that cannot be started at all.
DYING = [sys.executable, "-c", "import sys; sys.stdin.readline(); sys.exit(3)"]
MISSING = ["/nonexistent/funnel-worker"]


@pytest.mark.parametrize("command", [DYING, MISSING], ids=["exits", "cannot-start"])
def test_a_worker_that_keeps_dying_is_restarted_with_back_off_and_healthz_answers_503(
    tmp_path: Path, command: list[str]
) -> None:
    settings = Settings.model_validate({"workers": 2, "secret_key": "k" * 32})
    pool = WorkerPool(settings, tmp_path, 1.0, command=command)
    db_engine = make_engine(f"sqlite:///{tmp_path / 'funnel.db'}")
    now = datetime.now(UTC)
    app = create_app(Health(db_engine, lambda: now, lambda: now, 60.0,
                            workers=lambda: pool.health(datetime.now(UTC), 1.0)))

    async def run() -> tuple[int, httpx.Response]:
        await pool.start()
        # Dies at once, again 1 s later, and would be started again 2 s after that.
        await asyncio.sleep(2.5)
        restarts = pool.slots[0].restarts
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            answer = await client.get("/healthz")
        await pool.stop(kill_after=5)
        return restarts, answer

    try:
        restarts, answer = asyncio.run(run())
    finally:
        db_engine.dispose()
    assert restarts == 1
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unhealthy" and body["checks"]["scheduler"] == "ok"
    assert body["checks"]["workers"] == "stale: no worker ticked (last never)"
    assert body["workers"] == {"processes": 2, "alive": 1, "ticking": 1, "restarts": 1}
