"""Signed link tokens: what verifies, and everything that must not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.mail.links import SignedLinks
from engine.mail.tokens import sign, verify
from engine.sequences.plan import EmailStep, PathKind, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAYS_60 = timedelta(days=60)


def test_a_token_verifies_for_its_purpose_within_its_age() -> None:
    token = sign("secret", "unsubscribe", ["3f2a9c"], NOW)
    assert verify("secret", "unsubscribe", token, NOW + timedelta(days=59), DAYS_60) == ["3f2a9c"]


@pytest.mark.parametrize("secret", ["s", "k" * 63, "k" * 64, "k" * 65, "ключ-" * 20])
def test_the_signature_is_hmac_sha256_of_the_payload_as_it_always_was(secret: str) -> None:
    # Tokens in emails already sent must keep verifying: the precomputed key states sign
    # exactly what hmac.digest signs, for short keys, a block's length and longer ones.
    token = sign(secret, "open", ["3f2a9c@funnel.example"], NOW)
    payload, signature = token.split(".")
    expected = hmac.digest(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256)[:16]
    assert signature == base64.urlsafe_b64encode(expected).rstrip(b"=").decode("ascii")
    assert verify(secret, "open", token, NOW, DAYS_60) == ["3f2a9c@funnel.example"]


def test_expired_early_wrong_purpose_or_wrong_key_do_not_verify() -> None:
    token = sign("secret", "unsubscribe", ["3f2a9c"], NOW)
    assert verify("secret", "unsubscribe", token, NOW + timedelta(days=61), DAYS_60) is None
    assert verify("secret", "unsubscribe", token, NOW - timedelta(hours=1), DAYS_60) is None
    assert verify("secret", "answer", token, NOW, DAYS_60) is None
    assert verify("other", "unsubscribe", token, NOW, DAYS_60) is None


def test_a_payload_rewritten_by_hand_does_not_verify() -> None:
    token = sign("secret", "answer", ["3f2a9c", "experience", "new"], NOW)
    payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body[-1] = "racer"
    forged = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert verify("secret", "answer", f"{forged}.{signature}", NOW, DAYS_60) is None


@given(st.text(max_size=300))
@example("é.é")  # compare_digest raises on non-ASCII text: found by this property
def test_no_string_at_all_crashes_or_verifies(garbage: str) -> None:
    assert verify("secret", "unsubscribe", garbage, NOW, DAYS_60) is None


@given(st.integers(min_value=0, max_value=200), st.characters(codec="ascii"))
def test_changing_any_one_character_breaks_the_token(position: int, replacement: str) -> None:
    token = sign("secret", "unsubscribe", ["3f2a9c"], NOW)
    index = position % len(token)
    if token[index] == replacement:
        return
    mutated = token[:index] + replacement + token[index + 1:]
    assert verify("secret", "unsubscribe", mutated, NOW, DAYS_60) is None


def test_the_links_of_an_email_carry_tokens_bound_to_that_delivery() -> None:
    message_id = "3f2a9c@funnel.example"  # the whole Message-ID: the delivery's unique column
    links = SignedLinks("https://funnel.example/", "secret", message_id, NOW)
    email = EmailStep("e1", PathKind.NURTURE, "one", Role.EDUCATION, "E1", "t/e1.html")
    unsubscribe = links.unsubscribe(email)
    assert unsubscribe.startswith("https://funnel.example/u/") and unsubscribe == links.unsubscribe(email)
    assert verify("secret", "unsubscribe", unsubscribe.rsplit("/", 1)[1], NOW, DAYS_60) == [message_id]
    answer = links.answer("experience", "new").rsplit("/", 1)[1]
    assert verify("secret", "answer", answer, NOW, DAYS_60) == [message_id, "experience", "new"]
    assert verify("secret", "confirm", links.confirm().rsplit("/", 1)[1], NOW, DAYS_60) == [message_id]
    click = links.click("https://shop.example/?a=1&b=2")
    assert click.startswith("https://funnel.example/c/")
    assert verify("secret", "click", click.rsplit("/", 1)[1], NOW, DAYS_60) == [
        message_id, "https://shop.example/?a=1&b=2"]
    assert links.pixel().startswith("https://funnel.example/o/")
    assert verify("secret", "open", links.pixel().rsplit("/", 1)[1], NOW, DAYS_60) == [message_id]
    assert "e1" not in unsubscribe and "@" not in unsubscribe  # no guessable id, no address


def test_a_click_link_too_long_to_verify_is_not_made() -> None:
    links = SignedLinks("https://funnel.example", "secret", "3f2a9c@funnel.example", NOW)
    url = "https://shop.example/?q=" + "x" * 1500
    assert links.click(url) == url  # verify() would refuse its token: the click could never be followed


def plain_token(secret: str, purpose: str, values: list[str], issued: datetime) -> str:
    """A token as json.dumps and base64 write it: what sign's direct writing must equal."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    body = json.dumps([purpose, int(issued.timestamp()), *values], separators=(",", ":"))
    payload = b64(body.encode("utf-8"))
    signature = hmac.digest(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256)[:16]
    return f"{payload}.{b64(signature)}"


@given(purpose=st.text(), values=st.lists(st.text()),
       seconds=st.integers(min_value=-(2**34), max_value=2**34))
@example(purpose="click", values=['https://x.example/?q="a\\b"&c=\u00e9\u2028\ud800\x00\x7f\U0001f389'],
         seconds=1772438400)
@example(purpose="", values=[], seconds=0)
def test_a_token_is_json_and_base64_as_the_standard_library_writes_them(
    purpose: str, values: list[str], seconds: int
) -> None:
    issued = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=seconds % 999_983)
    assert sign("secret", purpose, values, issued) == plain_token("secret", purpose, values, issued)
