"""Three `funnel run` processes on one PostgreSQL database never send the same step twice."""

from __future__ import annotations

import signal
from pathlib import Path

import sqlalchemy as sa

from engine.store.db import make_engine
from engine.store.tables import DELIVERY
from tests.scheduler.daemons import (
    actions,
    add_subscribers,
    instant_project,
    received,
    smtp_server,
    start_daemon,
    wait_for,
)
from tests.support.databases import postgres_database

SUBSCRIBERS = 600  # 1,200 messages


def test_three_daemons_share_the_work_and_send_every_step_exactly_once(tmp_path: Path) -> None:
    project = instant_project(tmp_path / "project")
    server_log = tmp_path / "received.jsonl"
    with postgres_database() as url, smtp_server(server_log) as port:
        add_subscribers(url, project, SUBSCRIBERS)
        logs = [tmp_path / f"daemon{i}.log" for i in range(3)]
        # Small batches so that all three get a share while the work lasts.
        daemons = [start_daemon(project, url, port, log, FUNNEL_BATCH_SIZE="20") for log in logs]
        try:
            wait_for(lambda: sum(received(server_log).values()) >= 2 * SUBSCRIBERS, 120, "every message")
        finally:
            for daemon in daemons:
                daemon.send_signal(signal.SIGTERM)
            statuses = [daemon.wait(30) for daemon in daemons]
        db_engine = make_engine(url)
        with db_engine.connect() as conn:
            rows = conn.execute(sa.select(DELIVERY.c.message_id, DELIVERY.c.status)).all()
            steps = conn.execute(sa.select(DELIVERY.c.enrollment_id, DELIVERY.c.step)).all()
        db_engine.dispose()
    assert statuses == [0, 0, 0]
    copies = received(server_log)
    assert len(rows) == 2 * SUBSCRIBERS and len(set(steps)) == len(steps)
    assert {status for _, status in rows} == {"sent"}
    assert sorted(copies) == sorted(m for m, _ in rows)
    assert max(copies.values()) == 1, "a message was sent twice"
    sent_by = [actions(log).count("sent") for log in logs]
    assert sum(sent_by) == 2 * SUBSCRIBERS and all(n > 0 for n in sent_by), sent_by
