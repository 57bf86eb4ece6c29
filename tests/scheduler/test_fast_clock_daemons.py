"""Two `funnel run --time-scale 3600` daemons on one database and a slow SMTP server send nothing twice.

Before issue 13 the delivery lease was 300 s of the fast clock, 83 ms of real time at
3600x: while one daemon waited for the server's reply, the other took the message over
and sent it again (three daemons with 250 ms replies sent 12-20 duplicates). The daemons
also each started their own fast clock, hours apart in clock time after a second.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.store.db import make_engine
from engine.store.tables import DELIVERY
from tests.scheduler.daemons import actions, add_subscribers, instant_project, start_daemon, wait_for
from tests.support.databases import database

SUBSCRIBERS = 20  # 40 messages: the magnet and the survey email each
REPLY_SECONDS = 0.4  # five times the old lease at 3600x
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)


class _SlowServer:
    """Answers each message's data after REPLY_SECONDS; counts copies by Message-ID."""

    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(REPLY_SECONDS)
        assert isinstance(envelope.content, bytes)
        found = _MESSAGE_ID.search(envelope.content)
        assert found is not None
        with self.lock:
            self.copies[found.group(1).decode()] += 1
        return "250 OK"

    def total(self) -> int:
        with self.lock:
            return sum(self.copies.values())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_demo_daemons_with_a_slow_smtp_server_send_every_message_once(kind: str, tmp_path: Path) -> None:
    project = instant_project(tmp_path / "project")
    handler = _SlowServer()
    with socket.socket() as probe:  # aiosmtpd's Controller cannot take port 0
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with database(kind, tmp_path) as url:
            add_subscribers(url, project, SUBSCRIBERS)
            logs = [tmp_path / f"daemon{i}.log" for i in range(2)]
            daemons = [
                start_daemon(project, url, controller.port, log, "--time-scale", "3600", "--force",
                             FUNNEL_BATCH_SIZE="4", FUNNEL_SMTP_CONNECTIONS="4")
                for log in logs
            ]
            try:
                wait_for(lambda: handler.total() >= 2 * SUBSCRIBERS, 60, "the first two emails of everyone")
                wait_for(lambda: _unsent(url) == 0, 30, "every delivery recorded")
                # Longer than an old lease a few times over: a copy taken over would go now.
                threading.Event().wait(4 * REPLY_SECONDS)
            finally:
                for daemon in daemons:
                    daemon.send_signal(signal.SIGTERM)
                statuses = [daemon.wait(30) for daemon in daemons]
            sent = _sent(url)
    finally:
        controller.stop()
    assert statuses == [0, 0]
    assert max(handler.copies.values()) == 1, [m for m, n in handler.copies.items() if n > 1]
    assert sorted(handler.copies) == sorted(sent)
    started = [actions(log).count("started") for log in logs]
    assert started == [1, 1] and sum(actions(log).count("recovered") for log in logs) == 0


def _unsent(url: str) -> int:
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            query = sa.select(sa.func.count()).where(DELIVERY.c.status.in_(("queued", "sending")))
            return int(conn.execute(query).scalar_one())
    finally:
        db_engine.dispose()


def _sent(url: str) -> list[str]:
    db_engine = make_engine(url)
    try:
        with db_engine.connect() as conn:
            query = sa.select(DELIVERY.c.message_id).where(DELIVERY.c.status == "sent")
            return [str(m) for m in conn.execute(query).scalars()]
    finally:
        db_engine.dispose()
