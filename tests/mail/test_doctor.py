"""`funnel doctor`'s checks against a fake resolver: every failure class with its fix, and the all-ok case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from engine.mail.dkimkeys import KeyEntry, KeyType, generate, private_pem, read_key
from engine.mail.doctor import Check, LookupFailed, Status, diagnose, quoted

ED = read_key(KeyEntry("shop.example", "ed1", "-"), private_pem(generate(KeyType.ED25519)))
RSA = read_key(KeyEntry("shop.example", "rsa1", "-"), private_pem(generate(KeyType.RSA)))
NEXT = read_key(KeyEntry("shop.example", "rsa2", "-"), private_pem(generate(KeyType.RSA)))
OTHER = read_key(KeyEntry("shop.example", "rsa1", "-"), private_pem(generate(KeyType.RSA)))


class FakeResolver:
    """Answers from a dict; a name listed in `failing` does not answer."""

    def __init__(self, records: Mapping[tuple[str, str], Sequence[str]], failing: Sequence[str] = ()) -> None:
        self.records = records
        self.failing = failing

    def txt(self, name: str) -> list[str]:
        return self._ask(name, "TXT")

    def mx(self, name: str) -> list[str]:
        return self._ask(name, "MX")

    def _ask(self, name: str, kind: str) -> list[str]:
        if name in self.failing:
            raise LookupFailed(f"{kind} {name}: no answer within 3 s")
        return list(self.records.get((name, kind), []))


GOOD = {
    ("shop.example", "TXT"): [
        "v=spf1 ip4:192.0.2.10 include:relay.example ~all",
        "google-site-verification=x",
    ],
    ("relay.example", "TXT"): ["v=spf1 ip4:198.51.100.0/24 -all"],
    ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=quarantine; rua=mailto:dmarc@shop.example"],
    ("shop.example", "MX"): ["mx1.shop.example"],
    ("ed1._domainkey.shop.example", "TXT"): [ED.record],
    ("rsa1._domainkey.shop.example", "TXT"): [RSA.record],
}


def run(
    changes: Mapping[tuple[str, str], Sequence[str] | None] = (),
    *,
    base_url: str | None = "https://f.shop.example",
    signing: Sequence = (ED, RSA),
    published: Sequence = (),
    failing: Sequence[str] = (),
) -> dict[str, Check]:
    records = {**GOOD, **dict(changes)}
    records = {k: v for k, v in records.items() if v is not None}
    checks = diagnose(["shop.example"], signing, published, base_url, FakeResolver(records, failing))
    return {c.name: c for c in checks}


def test_all_ok() -> None:
    checks = run()
    assert {name: c.status for name, c in checks.items()} == {
        "SPF": Status.OK,
        "DMARC": Status.OK,
        "MX": Status.OK,
        "DKIM ed1": Status.OK,
        "DKIM rsa1": Status.OK,
        "base_url": Status.OK,
    }


def test_spf_missing_says_what_to_publish() -> None:
    check = run({("shop.example", "TXT"): ["google-site-verification=x"]})["SPF"]
    assert check.status is Status.FAIL
    assert check.fix.startswith('publish a TXT record at shop.example: "v=spf1 mx ~all"')


@pytest.mark.parametrize(("record", "words"), [("v=spf1 +all", "lets any server"), ("v=spf1 a ?all", "?all")])
def test_spf_that_vouches_for_anyone_or_nobody_is_a_warning(record: str, words: str) -> None:
    check = run({("shop.example", "TXT"): [record]})["SPF"]
    assert check.status is Status.WARN and words in check.detail and "~all" in check.fix


def test_spf_over_ten_lookups_is_a_warning() -> None:
    includes = " ".join(f"include:r{i}.example" for i in range(6))
    nested = {(f"r{i}.example", "TXT"): ["v=spf1 a mx -all"] for i in range(6)}
    check = run({("shop.example", "TXT"): [f"v=spf1 {includes} ~all"], **nested})["SPF"]
    assert check.status is Status.WARN and "18 DNS lookups" in check.detail


def test_two_spf_records_fail() -> None:
    check = run({("shop.example", "TXT"): ["v=spf1 mx ~all", "v=spf1 a ~all"]})["SPF"]
    assert check.status is Status.FAIL and "merge them" in check.fix


def test_dkim_record_missing_gives_the_record() -> None:
    check = run({("rsa1._domainkey.shop.example", "TXT"): None})["DKIM rsa1"]
    assert check.status is Status.FAIL
    assert check.fix == f"publish a TXT record at rsa1._domainkey.shop.example: {quoted(RSA.record)}"
    assert all(len(part) <= 257 for part in check.fix.split(": ", 1)[1].split(" "))  # 255 + the quotes


def test_dkim_key_mismatch_says_replace() -> None:
    check = run({("rsa1._domainkey.shop.example", "TXT"): [OTHER.record]})["DKIM rsa1"]
    assert check.status is Status.FAIL and "not the configured one" in check.detail
    assert check.fix.startswith("replace it: publish a TXT record at rsa1._domainkey.shop.example")


def test_dkim_revoked_key_and_wrong_type_fail() -> None:
    assert (
        "revoked"
        in run({("rsa1._domainkey.shop.example", "TXT"): ["v=DKIM1; k=rsa; p="]})["DKIM rsa1"].detail
    )
    wrong = run({("ed1._domainkey.shop.example", "TXT"): [f"v=DKIM1; p={ED.public}"]})["DKIM ed1"]
    assert wrong.status is Status.FAIL  # no k=: rsa, but the key is Ed25519


def test_no_key_for_a_sending_domain_fails_and_ed25519_alone_warns() -> None:
    none = run(signing=())["DKIM"]
    assert none.status is Status.FAIL and "funnel dkim keygen shop.example" in none.fix
    alone = run(signing=(ED,))["DKIM"]
    assert alone.status is Status.WARN and "--type rsa" in alone.fix


def test_a_published_key_is_checked_too() -> None:
    check = run(published=(NEXT,))["DKIM rsa2"]
    assert check.status is Status.FAIL and "(published, not signing)" in check.detail
    published = run({("rsa2._domainkey.shop.example", "TXT"): [NEXT.record]}, published=(NEXT,))
    assert published["DKIM rsa2"].status is Status.OK


def test_dmarc_missing_and_p_none() -> None:
    missing = run({("_dmarc.shop.example", "TXT"): None})["DMARC"]
    assert missing.status is Status.FAIL
    assert missing.fix.startswith('publish a TXT record at _dmarc.shop.example: "v=DMARC1; p=quarantine;')
    none = run({("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=none"]})["DMARC"]
    assert none.status is Status.WARN and "p=quarantine" in none.fix
    no_policy = run({("_dmarc.shop.example", "TXT"): ["v=DMARC1; rua=mailto:x@shop.example"]})["DMARC"]
    assert no_policy.status is Status.FAIL


def test_dmarc_and_mx_of_the_organizational_domain_count() -> None:
    checks = diagnose(["news.shop.example"], [], [], "https://f.shop.example", FakeResolver(GOOD))
    by_name = {c.name: c for c in checks}
    assert by_name["DMARC"].status is Status.OK and "_dmarc.shop.example" in by_name["DMARC"].detail
    assert by_name["MX"].status is Status.OK


def test_mx_missing_or_null() -> None:
    for answer in (None, ["."]):
        check = run({("shop.example", "MX"): answer})["MX"]
        assert check.status is Status.FAIL and check.fix.startswith("publish an MX record for shop.example")


@pytest.mark.parametrize("base_url", [None, "http://f.shop.example"])
def test_base_url_must_be_https(base_url: str | None) -> None:
    check = run(base_url=base_url)["base_url"]
    assert check.status is Status.FAIL and "RFC 8058" in check.fix and 'base_url = "https://' in check.fix


def test_dns_that_does_not_answer_is_a_failure_not_a_crash() -> None:
    checks = run(failing=["shop.example"])
    assert checks["SPF"].status is Status.FAIL and "did not answer" in checks["SPF"].detail
    assert checks["DKIM rsa1"].status is Status.OK
