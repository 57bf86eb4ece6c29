"""Postmark webhook records, from the sample payloads, normalised to Feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from engine.feedback import Feedback, FeedbackKind, postmark
from tests.feedback.samples import SAMPLE_MESSAGE_ID, sample

COMPLAINT, BOUNCE, IGNORED = FeedbackKind.COMPLAINT, FeedbackKind.BOUNCE, FeedbackKind.IGNORED
# Postmark's bounce types (its Bounce API reference), and what each must become.
HARD = {"HardBounce", "BadEmailAddress"}
SPAM = {"SpamComplaint", "SpamNotification"}
NOT_ACTED_ON = {"Transient", "SoftBounce", "DnsError", "AutoResponder", "AddressChange",
                "ChallengeVerification", "OpenRelayTest", "VirusNotification", "Unsubscribe", "Subscribe",
                "Unconfirmed", "Blocked", "DMARCPolicy", "ManuallyDeactivated", "SMTPApiError",
                "InboundError",
                "TemplateRenderingFailed", "Unknown", "SomethingNew"}


def test_a_hard_bounce_finds_our_message_id_in_the_bounce_dump() -> None:
    assert postmark.parse(sample("postmark_bounce")) == [Feedback(
        kind=BOUNCE, email="ann@example.com", message_id=SAMPLE_MESSAGE_ID,
        at=datetime(2026, 3, 2, 9, 0, 7, 907025, tzinfo=UTC), provider="postmark", provider_id="4323372036",
        detail="smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    )]


def test_a_spam_complaint_takes_our_message_id_from_the_metadata() -> None:
    assert postmark.parse(sample("postmark_spam_complaint")) == [Feedback(
        kind=COMPLAINT, email="ann@example.com", message_id=SAMPLE_MESSAGE_ID,
        at=datetime(2026, 3, 3, 18, 21, 4, 339643, tzinfo=timezone(timedelta(hours=-5))),
        provider="postmark", provider_id="4323372041",
        detail="Spam complaint received from the recipient's mailbox provider",
    )]


@pytest.mark.parametrize("bounce_type", sorted(HARD | SPAM | NOT_ACTED_ON))
def test_every_bounce_type_maps_to_the_vocabulary(bounce_type: str) -> None:
    [found] = postmark.parse({**sample("postmark_soft_bounce"), "Type": bounce_type})
    expected = BOUNCE if bounce_type in HARD else COMPLAINT if bounce_type in SPAM else IGNORED
    assert (found.kind, found.email, found.provider_id) == (expected, "ann@example.com", "4323372050")
    if expected is IGNORED:
        assert found.detail.startswith(f"Postmark {bounce_type}: ")


def test_the_mapping_knows_every_documented_bounce_type() -> None:
    assert set(postmark.BOUNCE_TYPES) == HARD | SPAM | (NOT_ACTED_ON - {"SomethingNew"})


@pytest.mark.parametrize(("change", "kind"), [
    ({}, COMPLAINT),
    ({"SuppressionReason": "HardBounce"}, BOUNCE),
    ({"SuppressionReason": "ManualSuppression"}, IGNORED),
    ({"SuppressSending": False, "SuppressionReason": None}, IGNORED),
])
def test_a_broadcast_stream_reports_complaints_as_subscription_changes(change: dict[str, Any],
                                                                      kind: FeedbackKind) -> None:
    [found] = postmark.parse({**sample("postmark_subscription_change"), **change})
    assert (found.kind, found.email) == (kind, "ann@example.com")
    assert found.provider_id == "d2f1a9b0-3c4e-4f5a-8b6c-7d8e9f0a1b2c:2026-03-04T07:45:10Z"


@pytest.mark.parametrize("record_type", ["Delivery", "Open", "Click", "Inbound", "Whatever"])
def test_other_records_are_ignored(record_type: str) -> None:
    [found] = postmark.parse({**sample("postmark_delivery"), "RecordType": record_type})
    assert (found.kind, found.detail) == (IGNORED, f"Postmark {record_type} record")
    assert found.provider_id == "883953f4-6105-42a2-a16a-77a8eac79483"


def test_no_message_id_without_metadata_or_dump_and_postmark_own_id_is_not_ours() -> None:
    [found] = postmark.parse(sample("postmark_soft_bounce"))
    assert found.message_id is None
    dump = {**sample("postmark_soft_bounce"), "Type": "HardBounce",
            "Content": "Message-ID: <dsn-1@mx.example.com>\r\n\r\nmessage/rfc822\r\n"
                       "message-id: <ours@example.com>\r\n"}
    assert postmark.parse(dump)[0].message_id == "ours@example.com"  # the returned message's, not the DSN's


def _without(name: str, key: str) -> dict[str, Any]:
    payload = sample(name)
    del payload[key]
    return payload


@pytest.mark.parametrize(("payload", "message"), [
    ("not an object", "one JSON object with 'RecordType'"),
    ({"FromFull": {"Email": "x@example.com"}}, "no 'RecordType' \\(this looks like the inbound webhook\\)"),
    (_without("postmark_bounce", "RecordType"), "no 'RecordType'$"),
    (_without("postmark_bounce", "ID"), "Bounce record has no 'ID'"),
    ({**sample("postmark_bounce"), "ID": True}, "Bounce record has no 'ID'"),
    (_without("postmark_spam_complaint", "Type"), "SpamComplaint record has no 'Type'"),
    (_without("postmark_bounce", "Email"), "Bounce record has no 'Email'"),
    ({**sample("postmark_bounce"), "Email": "not an address"}, "Bounce record has no 'Email'"),
    (_without("postmark_subscription_change", "Recipient"), "no 'Recipient'"),
    (_without("postmark_subscription_change", "ChangedAt"), "needs 'MessageID' and 'ChangedAt'"),
])
def test_malformed_records_raise_a_clear_value_error(payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        postmark.parse(payload)
