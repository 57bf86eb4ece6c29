"""Subscription bombing: someone signs a stranger's address up again and again, from many IPs.

The victim must get at most one confirmation email a day, whatever the number of posts,
IP addresses and double-opt-in funnels; and no answer may tell the bomber whether an
address is known, or that the honeypot caught them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from engine.store import queries
from engine.store.tables import CONSENT, ENROLLMENT, EVENT, SUBSCRIBER
from tests.scheduler.harness import Harness
from tests.support.project import funnels_project, minimal_project
from tests.web.served import serve

MONDAY = datetime(2026, 3, 2, 9, tzinfo=UTC)
VICTIM = "victim@example.com"
# One address however it is typed: the limits and the subscriber go by its lowercased form.
SPELLINGS = [VICTIM, "Victim@Example.com", "VICTIM@EXAMPLE.COM", f"  {VICTIM} "]
GAP = timedelta(hours=24)


def _rows(harness: Harness) -> dict[str, int]:
    with harness.db_engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (SUBSCRIBER, ENROLLMENT, CONSENT, EVENT)}


def _ip(n: int) -> dict[str, str]:
    return {"x-forwarded-for": f"10.1.{n // 250}.{n % 250 + 1}"}


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    # The shipped limits: 20 signups per IP and 3 per address, an hour.
    h = Harness(db_url, minimal_project(tmp_path / "project"), MONDAY,
                signup_limit_per_ip=20, signup_limit_per_address=3)
    yield h
    h.close()


def test_a_thousand_signups_of_one_address_from_200_ips_send_one_confirmation(harness: Harness) -> None:
    answers: list[httpx.Response] = []
    with serve(harness) as client:
        for n in range(1000):
            email = SPELLINGS[n % len(SPELLINGS)]
            headers = _ip(n % 200)  # five posts per IP: the per-IP limit never answers
            body = {"email": email, "funnel": "minimal"}
            if n % 2:
                answers.append(client.post("/subscribe", data=body, headers=headers))
            else:
                answers.append(client.post("/subscribe", json=body, headers=headers))
    harness.run_until(MONDAY + timedelta(days=3))
    accepted = [a for a in answers if a.status_code in (200, 201, 303)]
    limited = [a for a in answers if a.status_code == 429]
    assert len(accepted) + len(limited) == 1000, sorted({a.status_code for a in answers})
    assert len(accepted) == 3  # signup_limit_per_address
    for answer in limited:
        assert 1 <= int(answer.headers["retry-after"]) <= 3600
        assert answer.headers.get("location") is None
    assert [m.rcpt_to for m in harness.transport.sent] == [VICTIM]
    assert harness.sent_steps() == ["confirm"]
    rows = _rows(harness)
    assert (rows["subscriber"], rows["enrollment"]) == (1, 1)
    assert rows["consent"] == len(accepted)


def _without_date(answer: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in answer.headers.items() if k not in ("date", "content-length")}
    return answer.status_code, headers, answer.content


def test_the_answer_does_not_tell_whether_an_address_is_known(harness: Harness) -> None:
    harness.add("known@example.com")
    with harness.db_engine.begin() as conn:
        queries.suppress(conn, "gone@example.com", "bounced", MONDAY)
    with serve(harness) as client:
        forms = [client.post("/subscribe", data={"email": a, "funnel": "minimal"}, headers=_ip(n))
                 for n, a in enumerate(["new@example.com", "known@example.com", "gone@example.com"])]
        scripts = [client.post("/subscribe", json={"email": a, "funnel": "minimal"}, headers=_ip(n + 10))
                   for n, a in enumerate(["fresh@example.com", "Known@Example.com", "gone@example.com"])]
    # A form post: the same redirect, headers and (empty) body for all three.
    assert forms[0].status_code == 303
    assert _without_date(forms[1]) == _without_date(forms[0])
    assert _without_date(forms[2]) == _without_date(forms[0])
    # JSON: the same body; only the status says 201 (new) or 200 (seen before).
    assert scripts[0].status_code == 201
    assert {a.status_code for a in scripts} <= {200, 201}
    assert {a.content for a in scripts} == {b'{"status":"pending_confirmation","funnel":"minimal"}'}
    with harness.db_engine.connect() as conn:
        assert queries.find_subscriber(conn, "gone@example.com") is None


def test_a_filled_honeypot_gets_the_usual_answer_and_writes_nothing(harness: Harness) -> None:
    bot = {"email": "bot@example.com", "funnel": "minimal", "website": "https://spam.example/"}
    with serve(harness) as client:
        trapped_form = client.post("/subscribe", data=bot, headers=_ip(1))
        trapped_json = client.post("/subscribe", json={**bot, "email": "bot2@example.com"}, headers=_ip(2))
        written = _rows(harness)
        real_form = client.post("/subscribe", data={**bot, "website": "", "email": "ann@example.com"},
                                headers=_ip(3))
        real_json = client.post("/subscribe", json={**bot, "website": "", "email": "bob@example.com"},
                                headers=_ip(4))
    assert written == {"subscriber": 0, "enrollment": 0, "consent": 0, "event": 0}
    assert _without_date(trapped_form) == _without_date(real_form)
    assert _without_date(trapped_json) == _without_date(real_json)
    assert real_form.status_code == 303 and real_json.status_code == 201
    assert _rows(harness)["subscriber"] == 2
    harness.tick()
    assert sorted(m.rcpt_to for m in harness.transport.sent) == ["ann@example.com", "bob@example.com"]


@pytest.mark.parametrize(
    ("funnels", "tick_between"),
    [
        pytest.param(["minimal", "second"], True, id="two funnels, a tick between the signups"),
        # Both signups before a tick: a gap checked at signup time sees no confirmation yet.
        pytest.param(["minimal", "second"], False, id="two funnels, both before a tick"),
        # The third must wait for the second, not only for the first.
        pytest.param(["minimal", "second", "third"], True, id="three funnels"),
    ],
)
def test_one_confirmation_a_day_whatever_the_funnels(
    db_url: str, tmp_path: Path, funnels: list[str], tick_between: bool
) -> None:
    """The first confirmation goes out now, each further one 24 h after the one before."""
    harness = Harness(db_url, funnels_project(tmp_path / "project", funnels), MONDAY)
    try:
        with serve(harness) as client:
            for n, funnel in enumerate(funnels):
                answer = client.post("/subscribe", data={"email": VICTIM, "funnel": funnel}, headers=_ip(n))
                assert answer.status_code == 303
                if tick_between:
                    harness.tick()
                harness.clock.advance(timedelta(hours=1))
        harness.tick()
        assert len(harness.transport.sent) == 1  # one now, whatever the number of funnels
        harness.run_until(MONDAY + GAP * (len(funnels) + 1))
        confirmations = sorted((d["sent_at"], d["funnel"]) for d in harness.deliveries()
                               if d["step"] == "confirm")
    finally:
        harness.close()
    assert sorted(funnel for _, funnel in confirmations) == sorted(funnels)  # each in the end
    times = [at for at, _ in confirmations]
    assert all(later - earlier >= GAP for earlier, later in pairwise(times)), times
