"""Addresses a mail server could read as another, and one Gmail inbox spelt 59 ways.

Issue 13, findings 11 and 12: `=?utf-8?q?a=0D=0A?=@example.com` was accepted and an SMTP
server decoded it into a recipient holding CR LF; `a%evil.test@example.com` was accepted;
59 dot variants of one Gmail address from one IP put 20 confirmations in one inbox within
an hour, where the per-address limit promises 3.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store.tables import CONSENT, SUBSCRIBER
from engine.subscribers.addresses import check_email
from engine.subscribers.csvleads import CsvLeads
from engine.subscribers.importing import Importer
from engine.web.limits import address_key
from tests.web.conftest import START, Site

FIX = "write the plain address, like ann@example.com"
# Each refused address and the start of the reason given for it.
DECODABLE = {
    "=?utf-8?q?a=0D=0A?=@example.com": "holds an encoded word (=?...?=), which mail servers may decode",
    "=?utf-8?b?YQ0K?=@example.com": "holds an encoded word (=?...?=)",
    "a%evil.test@example.com": "holds '%' before '@' (the percent hack)",
    "evil.test!a@example.com": "holds '!' before '@' (a UUCP bang path)",
    "@relay.test:a@example.com": "starts with a source route (@host:...)",
    '"a b"@example.com': "has a quoted part before '@'",
}


def _count(site: Site, table: sa.Table) -> int:
    with site.harness.db_engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_the_one_validator_says_why_and_what_to_write() -> None:
    for address, reason in DECODABLE.items():
        normalized, problem = check_email(address)
        assert normalized is None and problem is not None, address
        assert problem.startswith(f"'{address}' {reason}") and problem.endswith(FIX), problem
    assert check_email('"a\\\r\nb"@example.com')[1] == (
        f"'\"a\\\r\nb\"@example.com' has a quoted part before '@', which can hide spaces and control "
        f"characters; {FIX}")
    srs = "SRS0=Ab1=XY=example.org=ann@example.com"
    assert check_email(srs) == (srs, None)  # '=' alone is fine
    assert check_email("Ann.Lee+news@Example.COM") == ("Ann.Lee+news@example.com", None)


@pytest.mark.parametrize("address", list(DECODABLE))
def test_signup_by_form_and_json_and_the_api_refuse_them_with_the_reason(site: Site, address: str) -> None:
    reason = DECODABLE[address]
    form = site.http.post("/subscribe", data={"email": address, "funnel": "minimal"},
                          headers={"Accept": "application/json"})
    as_json = site.http.post("/subscribe", json={"email": address, "funnel": "minimal"})
    by_api = site.http.post("/api/subscribers", json={"email": address, "funnel": "minimal"},
                            headers=site.api)
    for answer in (form, as_json, by_api):
        assert answer.status_code == 422, answer.text
        [problem] = answer.json()["detail"]
        assert problem["loc"] == ["body", "email"] and reason in problem["msg"], problem
    site.harness.run_until(START + timedelta(hours=3))
    assert (_count(site, SUBSCRIBER), _count(site, CONSENT)) == (0, 0)
    assert site.harness.transport.sent == []


def test_a_csv_import_refuses_those_rows_by_line_and_keeps_the_rest(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,name\n" "ann@example.com,Ann\n" "=?utf-8?q?a=0D=0A?=@example.com,Eve\n"
                    "a%evil.test@example.com,Mallory\n" "bob@example.com,Bob\n", encoding="utf-8")
    plan = site.harness.daemon.live.current.plans["minimal"]
    problems: list[str] = []
    counts = Importer(site.harness.db_engine, plan, CsvLeads(path, plan, "people.csv"),
                      clock=site.harness.clock.now, on_problem=problems.append).run()
    assert problems == [
        "people.csv:3: '=?utf-8?q?a=0D=0A?=@example.com' holds an encoded word (=?...?=), which mail servers "
        f"may decode into other characters, line breaks included; {FIX}",
        "people.csv:4: 'a%evil.test@example.com' holds '%' before '@' (the percent hack), which some "
        f"servers read as 'send on to the host after %'; {FIX}",
    ]
    assert (counts.added, counts.bad) == (2, 2)
    with site.harness.db_engine.connect() as conn:
        assert sorted(conn.execute(sa.select(SUBSCRIBER.c.email)).scalars()) == ["ann@example.com",
                                                                                 "bob@example.com"]


def _dot_variants(local: str, count: int) -> list[str]:
    """`count` spellings of one Gmail mailbox: dots between the letters of `local`."""
    spellings = []
    for mask in range(count):
        spelt = local[0]
        for n, letter in enumerate(local[1:]):
            spelt += ("." if mask >> n & 1 else "") + letter
        spellings.append(f"{spelt}@gmail.com")
    return spellings


def test_gmail_dots_and_googlemail_are_one_mailbox_for_the_limit_only() -> None:
    assert address_key("J.O.H.N.Doe+x@GoogleMail.com") == address_key("johndoe@gmail.com")
    assert address_key("johndoe@gmail.com") == "johndoe@gmail.com"
    assert address_key("j.doe@example.com") == "j.doe@example.com"  # dots matter elsewhere


def test_59_dot_variants_of_one_gmail_address_get_the_three_confirmations_promised(site: Site) -> None:
    variants = _dot_variants("victimname", 59)
    assert len(set(variants)) == 59
    answers = [site.http.post("/subscribe", json={"email": email, "funnel": "minimal"}) for email in variants]
    folded = {"email": "victimname@googlemail.com", "funnel": "minimal"}
    googlemail = site.http.post("/subscribe", json=folded, headers={"x-forwarded-for": "10.9.9.9"})
    site.harness.run_until(START + timedelta(hours=1))
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [201, 201, 201] and set(statuses[3:]) == {429}, statuses
    assert googlemail.status_code == 429 and googlemail.json()["detail"][0]["loc"] == ["body", "email"]
    for answer in answers[3:20]:  # the per-IP limit (20 an hour) answers the ones after these
        assert answer.json()["detail"][0]["loc"] == ["body", "email"]
    sent = [m.rcpt_to for m in site.harness.transport.sent]
    assert sent == variants[:3]  # each spelling is stored as it was given: three subscribers
    assert site.harness.sent_steps() == ["confirm"] * 3

