"""An unsubscribe stops marketing email a tick has already claimed, as well as queued email."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from engine.mail.memory import MemoryTransport
from engine.mail.transport import Outcome, Outgoing, Result
from engine.scheduler.stoplist import Stoplist
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project
from tests.web.conftest import START
from tests.web.mailbox import link
from tests.web.served import serve


def test_a_message_claimed_before_the_unsubscribe_does_not_leave(db_url: str, tmp_path: Path) -> None:
    http: list[httpx.Client] = []
    bo_link: list[str] = []
    trigger: list[str] = []  # the Message-ID of Ann's email during which Bo unsubscribed

    def script(message: Outgoing) -> Result:
        # Ann and Bo walk in step, so their emails are claimed in one batch, Ann's first.
        # While Ann's first nurture email goes out, Bo's copy is claimed and waiting: Bo
        # presses one-click unsubscribe now.
        if message.rcpt_to == "ann@example.com" and bo_link and not trigger:
            trigger.append(message.message_id)
            response = http[0].post(bo_link[0], data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 200
        return Result(Outcome.SENT, 250, "ok")

    harness = Harness(db_url, minimal_project(tmp_path / "p"), START, transport=MemoryTransport(script))
    try:
        with serve(harness) as client:
            for address in ("ann@example.com", "bo@example.com"):
                harness.add(address, answers={"level": "new"})
                harness.event(address, "confirmed", funnel="minimal")
            harness.tick()
            [bo_magnet] = [m for m in harness.transport.sent if m.rcpt_to == "bo@example.com"]
            bo_link.append(link(bo_magnet, "/u/"))
            http.append(client)
            harness.run_until(START + timedelta(days=20))
            deliveries = harness.deliveries()
    finally:
        harness.close()
    assert trigger, "Ann got no email after the magnet"
    by_id = {d["message_id"]: d for d in deliveries}
    step = by_id[trigger[0]]["step"]
    [bo_copy] = [d for d in deliveries if d["subscriber_id"] == by_id[bo_magnet.message_id]["subscriber_id"]
                 and d["step"] == step]
    assert bo_copy["status"] == "suppressed"  # claimed, rendered, and still not sent
    sent_to_bo = [m for m in harness.transport.sent if m.rcpt_to == "bo@example.com"]
    assert [by_id[m.message_id]["step"] for m in sent_to_bo] == ["magnet"]


def test_an_unsubscribe_during_a_send_that_fails_with_4xx_is_not_undone_by_the_retry(
    db_url: str, tmp_path: Path
) -> None:
    http: list[httpx.Client] = []
    bo_link: list[str] = []
    pressed: list[str] = []
    stoplists: list[Stoplist] = []

    def script(message: Outgoing) -> Result:
        # Bo's first nurture email is on the wire when Bo presses one-click unsubscribe;
        # then the server answers 451. The retry must not send it.
        if message.rcpt_to == "bo@example.com" and bo_link and not pressed:
            pressed.append(message.message_id)
            assert http[0].post(bo_link[0], data={"List-Unsubscribe": "One-Click"}).status_code == 200
            # As after a restart: the in-memory stop list forgets it at once, so only the
            # database can keep the retry from going out.
            stoplists[0].keep_seconds = 0
            return Result(Outcome.RETRY, 451, "4.3.0 try again later")
        return Result(Outcome.SENT, 250, "ok")

    harness = Harness(db_url, minimal_project(tmp_path / "p"), START, transport=MemoryTransport(script))
    try:
        with serve(harness) as client:
            harness.add("bo@example.com", answers={"level": "new"})
            harness.event("bo@example.com", "confirmed", funnel="minimal")
            harness.tick()
            [magnet] = harness.transport.sent
            bo_link.append(link(magnet, "/u/"))
            http.append(client)
            stoplists.append(harness.daemon.dispatcher.sender.stoplist)
            harness.run_until(START + timedelta(days=20))
            deliveries = {d["message_id"]: d for d in harness.deliveries()}
    finally:
        harness.close()
    assert pressed, "no email after the magnet was attempted"
    assert deliveries[pressed[0]]["status"] == "suppressed"
    assert [deliveries[m.message_id]["step"] for m in harness.transport.sent] == ["magnet"]
