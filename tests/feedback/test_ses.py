"""Amazon SES notifications through SNS, from the sample payloads, normalised to Feedback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.feedback import Feedback, FeedbackKind, ses
from tests.feedback.samples import SAMPLE_MESSAGE_ID, sample, ses_inner, ses_repacked

COMPLAINT, BOUNCE, IGNORED = FeedbackKind.COMPLAINT, FeedbackKind.BOUNCE, FeedbackKind.IGNORED


def test_a_complaint_names_the_recipient_and_our_message_id() -> None:
    assert ses.parse(sample("ses_complaint")) == [Feedback(
        kind=COMPLAINT, email="ann@example.com", message_id=SAMPLE_MESSAGE_ID,
        at=datetime(2026, 3, 3, 18, 21, 4, 512000, tzinfo=UTC), provider="ses",
        provider_id="0102018e14c8e7f1-2b3c9d41-0a5e-4f6b-8c7d-1e2f3a4b5c6d-000000",
        detail="abuse via Yahoo!-Mail-Feedback/2.0",
    )]


def test_a_permanent_bounce_of_two_recipients_is_two_bounces_with_their_diagnostics() -> None:
    found = ses.parse(sample("ses_bounce_permanent"))
    assert [(f.kind, f.email, f.detail) for f in found] == [
        (BOUNCE, "ann@example.com",
         "smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown"),
        (BOUNCE, "bob@example.com", "smtp; 550 5.1.1 user unknown"),
    ]
    # No commonHeaders in this sample: our Message-ID is read from the raw header list.
    assert {f.message_id for f in found} == {SAMPLE_MESSAGE_ID}
    assert {f.provider_id for f in found} == {"0102018e0f3a2a77-9e8d7c6b-5a4f-4e3d-b2c1-a0f9e8d7c6b5-000000"}


def test_a_configuration_set_event_sent_as_a_raw_message_is_read_too() -> None:
    [found] = ses.parse(sample("ses_event_complaint_raw"))
    assert (found.kind, found.email, found.message_id) == (COMPLAINT, "ann@example.com", SAMPLE_MESSAGE_ID)
    assert found.provider_id == "0102018e1a0b9c8d-7e6f5a4b-3c2d-4e1f-9a8b-7c6d5e4f3a2b-000000"


@pytest.mark.parametrize(("bounce_type", "kind"), [
    ("Permanent", BOUNCE), ("Transient", IGNORED), ("Undetermined", IGNORED), ("SomethingNew", IGNORED),
])
def test_only_a_permanent_bounce_is_a_bounce(bounce_type: str, kind: FeedbackKind) -> None:
    payload = sample("ses_bounce_transient")
    inner = ses_inner(payload)
    inner["bounce"]["bounceType"] = bounce_type
    [found] = ses.parse(ses_repacked(payload, inner))
    assert (found.kind, found.email) == (kind, "ann@example.com")
    if kind is IGNORED:
        assert found.detail == (f"SES {bounce_type}/MailboxFull bounce (not permanent): "
                                "smtp; 552 5.2.2 Mailbox full")


@pytest.mark.parametrize(("feedback_type", "kind"), [
    (None, COMPLAINT), ("abuse", COMPLAINT), ("fraud", COMPLAINT), ("virus", COMPLAINT),
    ("auth-failure", COMPLAINT), ("other", COMPLAINT), ("not-spam", IGNORED),
])
def test_every_complaint_feedback_type_but_not_spam_is_a_complaint(feedback_type: str | None,
                                                                   kind: FeedbackKind) -> None:
    payload = sample("ses_complaint")
    inner = ses_inner(payload)
    inner["complaint"].pop("complaintFeedbackType")
    if feedback_type is not None:
        inner["complaint"]["complaintFeedbackType"] = feedback_type
    [found] = ses.parse(ses_repacked(payload, inner))
    assert found.kind is kind


@pytest.mark.parametrize("name", ["Delivery", "Send", "Reject", "Open", "Click", "Rendering Failure",
                                  "DeliveryDelay", "Subscription", "AmazonSnsSubscriptionSucceeded"])
def test_other_notifications_are_ignored_by_name(name: str) -> None:
    payload = sample("ses_delivery")
    inner = ses_inner(payload)
    inner["notificationType"] = name
    assert ses.parse(ses_repacked(payload, inner)) == [Feedback(
        kind=IGNORED, email="", message_id=None, at=None, provider="ses",
        provider_id="0e1d2c3b-4a59-5687-a6b5-c4d3e2f1a0b9", detail=f"SES {name} notification")]


def test_subscription_messages_are_not_feedback() -> None:
    confirmation = sample("ses_subscription_confirmation")
    assert ses.subscribe_url(confirmation) == confirmation["SubscribeURL"]
    assert ses.subscribe_url(sample("ses_complaint")) is None
    [ignored] = ses.parse(sample("ses_unsubscribe_confirmation"))
    assert (ignored.kind, ignored.detail) == (IGNORED, "SNS UnsubscribeConfirmation")
    with pytest.raises(ValueError, match="https:// SubscribeURL"):
        ses.subscribe_url({**confirmation, "SubscribeURL": "http://169.254.169.254/latest"})


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    inner = ses_inner(payload)
    target = inner
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return ses_repacked(payload, inner)


def _bounce_of_someone_without_address() -> dict[str, Any]:
    payload = sample("ses_bounce_permanent")
    inner = ses_inner(payload)
    inner["bounce"]["bouncedRecipients"][1] = {"status": "5.1.1"}
    return ses_repacked(payload, inner)


@pytest.mark.parametrize(("payload", "message"), [
    ([1, 2], "an SNS message is a JSON object"),
    ({"hello": "world"}, "not an SNS message: no 'Type'"),
    ({**sample("ses_complaint"), "Type": "Notice"}, "unknown SNS message Type 'Notice'"),
    ({**sample("ses_complaint"), "MessageId": ""}, "no 'MessageId'"),
    ({**sample("ses_complaint"), "Message": {"notificationType": "Complaint"}}, "must be a string"),
    ({**sample("ses_complaint"), "Message": "Hello from the SNS console"}, "'Message' is not JSON"),
    ({**sample("ses_complaint"), "Message": "[]"}, "must be a JSON object"),
    (_without(sample("ses_complaint"), "notificationType"), "no 'notificationType'"),
    (_without(sample("ses_complaint"), "mail"), "Complaint notification has no 'mail'"),
    (_without(sample("ses_complaint"), "complaint"), "has no 'complaint' object"),
    (_without(sample("ses_bounce_permanent"), "bounce"), "has no 'bounce' object"),
    (_without(sample("ses_complaint"), "complaint", "complainedRecipients"),
     "'complainedRecipients' must be a non-empty list"),
])
def test_malformed_notifications_raise_a_clear_value_error(payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ses.parse(payload)


def test_a_recipient_without_an_address_is_left_out_and_the_others_kept() -> None:
    complete = [f.email for f in ses.parse(sample("ses_bounce_permanent"))]
    assert len(complete) >= 2
    kept = [f.email for f in ses.parse(_bounce_of_someone_without_address())]
    assert kept == [complete[0], *complete[2:]]
    nobody = sample("ses_bounce_permanent")
    inner = ses_inner(nobody)
    inner["bounce"]["bouncedRecipients"] = [{"status": "5.1.1"}]
    with pytest.raises(ValueError, match="no entry of 'bouncedRecipients' has an 'emailAddress'"):
        ses.parse(ses_repacked(nobody, inner))


def test_the_message_id_comes_without_brackets_and_ses_own_id_is_never_taken_for_ours() -> None:
    payload = sample("ses_complaint")
    inner = ses_inner(payload)
    inner["mail"]["commonHeaders"]["messageId"] = "  <abc@example.com> "
    assert ses.parse(ses_repacked(payload, inner))[0].message_id == "abc@example.com"
    del inner["mail"]["commonHeaders"]
    del inner["mail"]["headers"]
    found = ses.parse(ses_repacked(payload, inner))[0]
    assert found.message_id is None  # mail.messageId is SES's id, not the Message-ID header
    assert json.loads(payload["Message"])["mail"]["messageId"] != found.message_id
