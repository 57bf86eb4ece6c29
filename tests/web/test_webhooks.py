"""Provider webhooks over real HTTP: SES (through SNS) and Postmark complaints and late bounces."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.store.rows import email_hash
from tests.feedback.samples import postmark_about, sample, ses_about
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project
from tests.web.conftest import API_KEY, START, Site
from tests.web.feedback_site import message_id_of, numbers, open_shop, written
from tests.web.served import serve

AUTH = ("sns", API_KEY)


@pytest.fixture
def shop(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """Ann and Bo got the magnet and E1 (sent) and E2 (deferred) of the minimal funnel."""
    with open_shop(db_url, tmp_path) as site:
        yield site


def _ses(site: Site, payload: Any, auth: Any = AUTH, **headers: str) -> httpx.Response:
    """Post as SNS does: text/plain, the message type in a header (for bytes, none)."""
    if isinstance(payload, bytes):
        body, sent = payload, {}
    else:
        body, sent = json.dumps(payload).encode(), {"x-amz-sns-message-type": payload.get("Type", "")}
    return site.http.post("/webhooks/ses", content=body, auth=auth,
                          headers={"content-type": "text/plain; charset=UTF-8", **sent, **headers})


def _postmark(site: Site, payload: Any, auth: Any = AUTH) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return site.http.post("/webhooks/postmark", content=body, auth=auth,
                          headers={"content-type": "application/json"})


def test_an_ses_complaint_suppresses_the_address_stops_its_mail_and_counts_against_its_email(
    shop: Site,
) -> None:
    payload = ses_about("ses_complaint", ["ANN@example.com"], message_id_of(shop, "ann@example.com", "e1"))
    answer = _ses(shop, payload)
    assert (answer.status_code, answer.json()) == (
        200, {"recorded": 1, "duplicate": 0, "ignored": 0, "unknown_address": 0})
    after = written(shop)
    assert after["events"] == [("complaint", "minimal", "e1")]
    assert after["suppressed"] == {email_hash("ann@example.com"): "complained"}
    assert after["statuses"] == {"ann@example.com": "complained", "bo@example.com": "active"}
    assert [d for d in after["deliveries"] if d[0] == 1] == [
        (1, "magnet", "sent"), (1, "e1", "sent"), (1, "e2", "suppressed")]
    assert numbers(shop) == {"sent": 2, "delivered": 2, "bounced": 0, "complained": 1}

    again = _ses(shop, payload)  # SNS redelivers until it gets a 2xx
    assert again.json() == {"recorded": 0, "duplicate": 1, "ignored": 0, "unknown_address": 0}
    assert written(shop)["events"] == [("complaint", "minimal", "e1")]

    attempts = len(shop.harness.transport.attempts)
    shop.harness.run_until(shop.harness.clock.now() + timedelta(days=30), every=timedelta(hours=12))
    later = [m.rcpt_to for m, _ in shop.harness.transport.attempts[attempts:]]
    assert "ann@example.com" not in later
    assert "bo@example.com" in later  # the funnel still runs for everyone else


def test_a_postmark_hard_bounce_marks_the_email_it_names_bounced_and_suppresses_the_address(
    shop: Site,
) -> None:
    # The dump names the magnet, not E1 (the latest marketing email): the match is what counts.
    payload = sample("postmark_bounce")
    payload["Content"] = payload["Content"].replace("5f0c2a9e3b7d4e1a8c6f2b9d0e4a7c31@example.com",
                                                    message_id_of(shop, "ann@example.com", "magnet"))
    first, again = _postmark(shop, payload), _postmark(shop, payload)
    assert first.json() == {"recorded": 1, "duplicate": 0, "ignored": 0, "unknown_address": 0}
    assert again.json() == {"recorded": 0, "duplicate": 1, "ignored": 0, "unknown_address": 0}
    after = written(shop)
    assert after["events"] == [("bounce", "minimal", "magnet")]
    assert after["suppressed"] == {email_hash("ann@example.com"): "bounced"}
    assert after["statuses"]["ann@example.com"] == "bounced"
    assert [d for d in after["deliveries"] if d[0] == 1] == [
        (1, "magnet", "bounced"), (1, "e1", "sent"), (1, "e2", "suppressed")]
    assert numbers(shop, "magnet") == {"sent": 2, "delivered": 1, "bounced": 1, "complained": 0}
    [magnet] = [d for d in shop.harness.deliveries() if (d["subscriber_id"], d["step"]) == (1, "magnet")]
    assert magnet["last_reply"] == payload["Details"]


def test_a_postmark_complaint_without_our_message_id_blames_the_latest_marketing_email(shop: Site) -> None:
    # The magnet (not marketing) and E1 went out; E2 is still deferred: E1 is the latest sent.
    ids = (None, "unknown@example.com", message_id_of(shop, "bo@example.com", "magnet"))
    for record_id, message_id in enumerate(ids, start=1):
        payload = postmark_about("postmark_spam_complaint", "ann@example.com", message_id, record_id)
        assert _postmark(shop, payload).json()["recorded"] == 1
    assert written(shop)["events"] == [("complaint", "minimal", "e1")] * 3
    assert numbers(shop)["complained"] == 1  # people, not reports


def test_a_broadcast_stream_complaint_arrives_as_a_subscription_change(shop: Site) -> None:
    payload = {**sample("postmark_subscription_change"), "Recipient": "bo@example.com"}
    assert _postmark(shop, payload).json()["recorded"] == 1
    assert written(shop)["statuses"] == {"ann@example.com": "active", "bo@example.com": "complained"}


def test_one_ses_bounce_of_several_recipients_records_the_known_ones(
    shop: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnel")
    payload = ses_about("ses_bounce_permanent", ["ann@example.com", "nobody@example.com", "bo@example.com"],
                        message_id_of(shop, "ann@example.com", "e1"))
    assert _ses(shop, payload).json() == {"recorded": 2, "duplicate": 0, "ignored": 0, "unknown_address": 1}
    after = written(shop)
    # Bo's report names Ann's email: Bo's own latest email takes the blame, not Ann's.
    assert after["events"] == [("bounce", "minimal", "e1")] * 2
    assert {d for d in after["deliveries"] if d[1] == "e1"} == {(1, "e1", "bounced"), (2, "e1", "bounced")}
    assert numbers(shop) == {"sent": 2, "delivered": 0, "bounced": 2, "complained": 0}
    assert set(after["suppressed"].values()) == {"bounced"} and len(after["suppressed"]) == 2
    assert email_hash("nobody@example.com") not in after["suppressed"]
    actions = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    assert [f["message_matched"] for a, f in actions if a == "bounced_later"] == [True, False]
    assert [a for a, _ in actions].count("feedback_unknown_address") == 1


def test_soft_bounces_deliveries_and_confirmations_change_nothing(shop: Site) -> None:
    before = written(shop)
    for name in ("ses_bounce_transient", "ses_delivery", "ses_unsubscribe_confirmation"):
        payload = sample(name)
        answer = _ses(shop, payload)
        assert (answer.status_code, answer.json()["ignored"], answer.json()["recorded"]) == (200, 1, 0)
    for payload in (sample("postmark_soft_bounce"), sample("postmark_delivery")):
        assert _postmark(shop, payload).json() == {"recorded": 0, "duplicate": 0, "ignored": 1,
                                                   "unknown_address": 0}
    assert written(shop) == before


def test_an_unknown_address_is_answered_200_and_nothing_is_written(
    shop: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnel")
    before = written(shop)
    answer = _ses(shop, ses_about("ses_complaint", ["stranger@example.com"], None))
    assert (answer.status_code, answer.json()["unknown_address"]) == (200, 1)
    answer = _postmark(shop, postmark_about("postmark_bounce", "stranger@example.com", None))
    assert (answer.status_code, answer.json()["unknown_address"]) == (200, 1)
    assert written(shop) == before
    assert [r.getMessage() for r in caplog.records].count("feedback_unknown_address") == 2


def test_a_subscription_confirmation_is_logged_for_the_operator_and_not_fetched(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="funnel")
    confirmation = sample("ses_subscription_confirmation")
    answer = _ses(site, confirmation)
    assert answer.status_code == 200
    [logged] = [r for r in caplog.records if r.getMessage() == "ses_subscription"]
    assert logged.fields["subscribe_url"] == confirmation["SubscribeURL"]  # type: ignore[attr-defined]
    assert logged.fields["topic"] == "arn:aws:sns:eu-west-1:111122223333:funnel-feedback"  # type: ignore[attr-defined]


def test_without_the_key_nothing_is_recorded(shop: Site) -> None:
    before = written(shop)
    for auth in (None, ("sns", "wrong"), ("sns", ""), ("sns", API_KEY + "x"), ("sns", API_KEY[:-1])):
        for answer in (_ses(shop, ses_about("ses_complaint", ["ann@example.com"], None), auth=auth),
                       _postmark(shop, sample("postmark_spam_complaint"), auth=auth)):
            assert answer.status_code == 401, auth
            # SNS sends the credentials of the URL only after this challenge.
            assert answer.headers["www-authenticate"] == 'Basic realm="funnel-engine webhooks"'
    bearer = shop.http.post("/webhooks/postmark", json=sample("postmark_spam_complaint"),
                            headers={"Authorization": f"Bearer {API_KEY}"})
    assert bearer.status_code == 401
    assert written(shop) == before


def test_the_webhook_key_replaces_the_api_key(db_url: str, tmp_path: Path) -> None:
    harness = Harness(db_url, minimal_project(tmp_path / "p"), START, api_key="api", webhook_key="hooks")
    try:
        harness.add("ann@example.com")
        with serve(harness) as http:
            site = Site(harness, http)
            assert _postmark(site, sample("postmark_spam_complaint"), auth=("u", "api")).status_code == 401
            assert written(site)["events"] == []
            accepted = _postmark(site, sample("postmark_spam_complaint"), auth=("any user", "hooks"))
            assert accepted.json()["recorded"] == 1
            assert written(site)["events"] == [("complaint", None, None)]  # nothing was ever sent to Ann
    finally:
        harness.close()


def test_without_a_webhook_key_webhooks_are_off_even_with_an_api_key(db_url: str, tmp_path: Path) -> None:
    harness = Harness(db_url, minimal_project(tmp_path / "p"), START, api_key="api")
    try:
        harness.add("ann@example.com")
        with serve(harness) as http:
            site = Site(harness, http)
            for auth in (None, ("u", ""), ("u", "anything"), ("u", "api")):
                refused = _postmark(site, sample("postmark_spam_complaint"), auth=auth)
                assert refused.status_code == 401
                detail = refused.json()["detail"]
                assert detail == "webhooks are off: set FUNNEL_WEBHOOK_KEY"
            assert written(site)["events"] == []
    finally:
        harness.close()


MALFORMED = [
    ("ses", b"{not json", "the body is not JSON"),
    ("ses", b"", "the body is not JSON"),
    ("ses", b"[]", "an SNS message is a JSON object"),
    ("ses", json.dumps({**sample("ses_complaint"), "Message": "hello"}).encode(), "'Message' is not JSON"),
    ("ses", json.dumps({**sample("ses_complaint"), "Type": "Notice"}).encode(), "unknown SNS message Type"),
    ("ses", json.dumps({**sample("ses_subscription_confirmation"), "SubscribeURL": 5}).encode(),
     "needs an https:// SubscribeURL"),
    ("postmark", b"\xff\xfe", "the body is not JSON"),
    ("postmark", json.dumps({"Email": "ann@example.com"}).encode(), "has no 'RecordType'"),
    ("postmark", json.dumps({**sample("postmark_bounce"), "Email": None}).encode(), "has no 'Email'"),
]


def test_a_malformed_body_is_400_with_the_reason_and_nothing_is_recorded(shop: Site) -> None:
    before = written(shop)
    for path, body, message in MALFORMED:
        answer = (_ses if path == "ses" else _postmark)(shop, body)
        assert answer.status_code == 400, (path, body[:80])
        assert message in answer.json()["detail"]
    assert written(shop) == before


def test_the_sns_message_type_header_must_match_the_body(shop: Site) -> None:
    answer = _ses(shop, ses_about("ses_complaint", ["ann@example.com"], None),
                  **{"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("the x-amz-sns-message-type header says 'SubscriptionConfirmation' "
                                       "but the body's Type is 'Notification'")
    assert written(shop)["events"] == []


def test_a_body_over_a_mebibyte_is_413(site: Site) -> None:
    payload = {**sample("postmark_bounce"), "Content": "x" * (1024 * 1024)}
    answer = _postmark(site, payload)
    assert answer.status_code == 413
    assert answer.json()["detail"] == "the body is over 1024 KiB; send a smaller one"  # before a byte is read


def test_the_openapi_document_lists_the_webhooks(site: Site) -> None:
    paths = site.http.get("/openapi.json").json()["paths"]
    assert {"/webhooks/ses", "/webhooks/postmark"} <= set(paths)
    assert "HTTPBasic" in site.http.get("/openapi.json").json()["components"]["securitySchemes"]
