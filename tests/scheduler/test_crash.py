"""SIGKILL the sending daemon five times while 3,000 emails are due: nothing lost, bounded doubles.

The SMTP server is a real aiosmtpd process that answers 451 to 5% of the recipients
(the first time) and 550 to 1% (always), chosen by a hash of the address. See
docs/delivery.md for the promise this checks.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import sqlalchemy as sa

from engine.store.db import make_engine
from engine.store.rows import email_hash
from engine.store.tables import DELIVERY, SUBSCRIBER, SUPPRESSION
from tests.scheduler.daemons import (
    add_subscribers,
    instant_project,
    received,
    smtp_server,
    start_daemon,
    wait_for,
)
from tests.support.smtp_server import planned_reply

SUBSCRIBERS = 1500  # two emails each (the magnet, then the survey): 3,000 messages
KILLS = 5
CONNECTIONS = 8


def test_five_kills_lose_nothing_mail_no_bounced_address_and_double_at_most_one_per_connection(
    tmp_path: Path,
) -> None:
    project = instant_project(tmp_path / "project")
    url = f"sqlite:///{tmp_path / 'funnel.db'}"
    add_subscribers(url, project, SUBSCRIBERS)
    server_log, daemon_log = tmp_path / "received.jsonl", tmp_path / "daemon.log"
    # A clock 100 times faster: the 5-minute back-off after a 451 passes in 3 seconds. The
    # lease is real time under any clock (issue 13), so a killed daemon's lasts 3 s by setting.
    args = ("--time-scale", "100", "--force")
    lease = {"FUNNEL_LEASE_SECONDS": "3"}
    with smtp_server(
        server_log, "--tempfail-percent", "5", "--bounce-percent", "1", "--tempfail-once"
    ) as port:
        for kill in range(KILLS):
            daemon = start_daemon(
                project, url, port, daemon_log, *args, FUNNEL_SMTP_CONNECTIONS=str(CONNECTIONS), **lease
            )
            target = (kill + 1) * 3000 // (KILLS + 2)  # kill at 1/7, 2/7, ... of the way
            wait_for(
                lambda d=daemon, t=target: sum(received(server_log).values()) >= t or d.poll() is not None,
                120,
                f"{target} messages before kill {kill + 1}",
            )
            assert daemon.poll() is None, daemon_log.read_text()[-3000:]
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
        daemon = start_daemon(project, url, port, daemon_log, *args, FUNNEL_SMTP_CONNECTIONS=str(CONNECTIONS),
                              **lease)
        db_engine = make_engine(url)

        def settled() -> bool:
            with db_engine.connect() as conn:
                pending = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(DELIVERY)
                    .where(DELIVERY.c.status.in_(("queued", "sending", "deferred")))
                ).scalar_one()
                total = conn.execute(sa.select(sa.func.count()).select_from(DELIVERY)).scalar_one()
            return bool(total == 3000 and pending == 0)

        wait_for(settled, 180, "every delivery to reach a final state")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    copies = received(server_log)
    with db_engine.connect() as conn:
        rows = conn.execute(
            sa.select(DELIVERY.c.message_id, DELIVERY.c.status, SUBSCRIBER.c.email).join(
                SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id
            )
        ).all()
        suppressed = set(conn.execute(sa.select(SUPPRESSION.c.email_hash)).scalars())
    db_engine.dispose()
    statuses = {status for _, status, _ in rows}
    assert statuses <= {"sent", "bounced", "suppressed"}, statuses
    bouncing = {email for _, _, email in rows if (planned_reply(email, 5, 1) or "").startswith("550")}
    assert bouncing, "the hash picked no bouncing address: the test would prove nothing"
    for message_id, status, email in rows:
        if email in bouncing:  # never accepted, suppressed, never mailed after
            assert status in ("bounced", "suppressed") and copies[message_id] == 0
            assert email_hash(email) in suppressed
        else:  # lost: never
            assert status == "sent" and copies[message_id] >= 1, (email, status)
    extra = sum(copies.values()) - len(copies)
    assert extra <= KILLS * CONNECTIONS, f"{extra} duplicate copies"
    assert "recovered" in daemon_log.read_text()  # the kills did leave claimed work behind
