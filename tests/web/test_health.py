"""/healthz and /metrics tell the truth about the mail transport (issue 13, finding 4).

A real `funnel run` sends over SMTP to an aiosmtpd sink on loopback; the sink is stopped
mid-run and started again on the same port. While it is down, /healthz answers 503 with
the transport degraded (the error and since when), /metrics shows it, and the log has one
WARNING, however many emails were deferred; once it is back, 200, one recovery line, and
every deferred email goes out, each once.
"""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from engine.project.folder import Project
from tests.support.project import shipped_project
from tests.support.smtp_server import running_smtp
from tests.web.live import LiveDaemon, Mailbox, live_daemon

# 5 minutes of back-off are 0.5 s here: the retries come quickly after the sink is back,
# and no later email of the funnel comes due while the test runs.
SCALE = 600.0
FUNNEL = "first-marathon"
_MESSAGE_ID = re.compile(r"<([^>]+)>")


def test_healthz_and_metrics_follow_the_smtp_server_down_and_back_and_nothing_is_lost(tmp_path: Path) -> None:
    project = shipped_project(tmp_path / "project")
    assert Project(project).plan(FUNNEL).double_opt_in
    port = _free_port()
    mailbox = Mailbox()
    early, late = "early@example.com", [f"late{n}@example.com" for n in range(3)]
    with live_daemon(project, port, tmp_path, SCALE) as daemon:
        with running_smtp(mailbox, port=port):
            _sign_up(daemon, early)
            daemon.wait_for(lambda: mailbox.messages(early), "the first confirmation")
            daemon.wait_for(lambda: _delivered(daemon, early), "its delivery recorded as sent")
            healthy = daemon.http.get("/healthz")
            assert healthy.status_code == 200, healthy.text
            assert healthy.json()["status"] == "ok"
            assert healthy.json()["transport"] == {"status": "ok"}
            assert healthy.json()["checks"]["transport"] == "ok"
            assert _metric(daemon, "funnel_transport_up") == 1
        stopped_at = datetime.now(UTC).replace(microsecond=0)

        # The sink is gone: every connection is refused.
        for address in late:
            _sign_up(daemon, address)
        health = daemon.wait_for(lambda: _answered(daemon, 503), "/healthz to answer 503")
        assert health["status"] == "degraded"
        assert health["checks"] == {"database": "ok", "scheduler": "ok", "transport": "degraded"}
        transport = health["transport"]
        assert transport["status"] == "degraded"
        assert transport["error"].startswith(f"cannot connect to 127.0.0.1:{port}: "), transport
        assert stopped_at <= datetime.fromisoformat(transport["since"]) <= datetime.now(UTC)
        # A load balancer keeps sending signups here: they are kept and mailed later.
        excluded = daemon.http.get("/healthz", params={"exclude": "transport"})
        assert excluded.status_code == 200 and excluded.json()["status"] == "degraded"
        # Several attempts of several emails failed by now, each with its own INFO line.
        daemon.wait_for(lambda: len(_lines(daemon, "deferred")) >= 2 * len(late), "retries while down")
        assert _metric(daemon, "funnel_transport_up") == 0
        assert _metric(daemon, "funnel_transport_degraded_seconds") > 0
        deferred = _lines(daemon, "deferred")
        assert {line["level"] for line in deferred} == {"info"}
        assert all(line["reply"].startswith("cannot connect to") for line in deferred)
        [warning] = _lines(daemon, "transport_degraded")
        assert warning["level"] == "warning"
        assert warning["error"] == transport["error"] or warning["error"].startswith("cannot connect to")
        assert warning["since"] == transport["since"] and "smtp_" in warning["fix"]
        assert not _lines(daemon, "transport_recovered")
        assert not mailbox.messages(late[0])

        with running_smtp(mailbox, port=port):
            for address in late:
                daemon.wait_for(lambda a=address: _delivered(daemon, a), f"the confirmation to {address}")
            recovered = daemon.wait_for(lambda: _answered(daemon, 200), "/healthz to answer 200 again")
            assert recovered == {"status": "ok", "transport": {"status": "ok"},
                                 "checks": {"database": "ok", "scheduler": "ok", "transport": "ok"}}
            assert _metric(daemon, "funnel_transport_up") == 1
            assert _metric(daemon, "funnel_transport_degraded_seconds") == 0
            [back] = _lines(daemon, "transport_recovered")
            assert back["level"] == "warning" and back["degraded_seconds"] > 0
            assert len(_lines(daemon, "transport_degraded")) == 1
            # Nothing lost, nothing twice: every address has its confirmation, once.
            got = [m for address in (early, *late) for m in mailbox.messages(address)]
            ids = {match.group(1) for m in got if (match := _MESSAGE_ID.search(str(m["Message-ID"])))}
            assert len(got) == len(ids) == 1 + len(late)


def test_healthz_refuses_an_unknown_exclusion_with_the_allowed_one(tmp_path: Path) -> None:
    project = shipped_project(tmp_path / "project")
    with running_smtp(Mailbox()) as smtp, live_daemon(project, smtp.port, tmp_path, SCALE) as daemon:
        response = daemon.http.get("/healthz", params={"exclude": "database"})
        assert response.status_code == 422
        assert "transport" in response.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sign_up(daemon: LiveDaemon, address: str) -> None:
    response = daemon.http.post("/subscribe", json={"email": address, "funnel": FUNNEL})
    assert response.status_code == 201, response.text


def _delivered(daemon: LiveDaemon, address: str) -> bool:
    deliveries = daemon.subscriber(address)["deliveries"]
    return bool(deliveries) and all(d["status"] == "sent" for d in deliveries)


def _answered(daemon: LiveDaemon, status: int) -> dict[str, Any] | None:
    try:
        response = daemon.http.get("/healthz", timeout=5)
    except httpx.TransportError:
        return None
    return dict(response.json()) if response.status_code == status else None


def _metric(daemon: LiveDaemon, name: str) -> float:
    text = daemon.http.get("/metrics").text
    [value] = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


def _lines(daemon: LiveDaemon, action: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in daemon.log.read_text(encoding="utf-8").splitlines()
             if line.startswith("{"))
    return [line for line in lines if line.get("action") == action]
