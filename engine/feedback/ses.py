"""Amazon SES notifications, delivered by Amazon SNS to an HTTP(S) subscription, as `Feedback`.

SNS posts a JSON envelope (`Type`: SubscriptionConfirmation, Notification or
UnsubscribeConfirmation; sent as text/plain). A Notification's `Message` is SES's own
JSON as a string: `notificationType` (identity feedback notifications) or `eventType`
(configuration-set event publishing) says what it is, `mail` names the message. With
SNS "raw message delivery" on, the body is SES's JSON itself; both are read here.
One notification may name several recipients: each becomes its own `Feedback`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.feedback import Feedback, FeedbackKind, bare_address, bare_message_id, text, timestamp

PROVIDER = "ses"
SNS_TYPES = ("SubscriptionConfirmation", "Notification", "UnsubscribeConfirmation")

# notificationType / eventType -> what it is; a bounce is then refined by BOUNCE_TYPES and a
# complaint by COMPLAINT_TYPES. Types not listed (AmazonSnsSubscriptionSucceeded, new
# ones SES adds) are ignored too, never refused: a 4xx makes SNS drop the message.
NOTIFICATION_TYPES: dict[str, FeedbackKind] = {
    "Complaint": FeedbackKind.COMPLAINT,
    "Bounce": FeedbackKind.BOUNCE,
    "Delivery": FeedbackKind.IGNORED,
    "Send": FeedbackKind.IGNORED,
    "Reject": FeedbackKind.IGNORED,
    "Open": FeedbackKind.IGNORED,
    "Click": FeedbackKind.IGNORED,
    "Rendering Failure": FeedbackKind.IGNORED,
    "DeliveryDelay": FeedbackKind.IGNORED,
    "Subscription": FeedbackKind.IGNORED,
}
# bounce.bounceType: only a permanent bounce suppresses. Transient ones (mailbox full,
# too large) and undetermined ones are not a reason to stop mailing a person.
BOUNCE_TYPES: dict[str, FeedbackKind] = {
    "Permanent": FeedbackKind.BOUNCE,
    "Transient": FeedbackKind.IGNORED,
    "Undetermined": FeedbackKind.IGNORED,
}
# complaint.complaintFeedbackType (RFC 5965 Feedback-Type), often absent: a complaint.
# "not-spam" is the reader saying the opposite.
COMPLAINT_TYPES: dict[str, FeedbackKind] = {
    "abuse": FeedbackKind.COMPLAINT,
    "auth-failure": FeedbackKind.COMPLAINT,
    "fraud": FeedbackKind.COMPLAINT,
    "other": FeedbackKind.COMPLAINT,
    "virus": FeedbackKind.COMPLAINT,
    "not-spam": FeedbackKind.IGNORED,
}


def subscribe_url(payload: Any) -> str | None:
    """The SubscribeURL of an SNS SubscriptionConfirmation; None for any other message."""
    if not isinstance(payload, dict) or payload.get("Type") != "SubscriptionConfirmation":
        return None
    url = payload.get("SubscribeURL")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError("an SNS SubscriptionConfirmation needs an https:// SubscribeURL")
    return url


def parse(payload: Any) -> list[Feedback]:
    """The feedback in one SNS message (or one raw SES notification); ValueError when malformed."""
    if not isinstance(payload, dict):
        raise ValueError("an SNS message is a JSON object with 'Type' and 'Message'")
    if "Type" not in payload:
        if "notificationType" in payload or "eventType" in payload:
            return _notification(payload, "")  # raw message delivery
        raise ValueError("not an SNS message: no 'Type' (SubscriptionConfirmation, Notification, ...)")
    kind, sns_id = payload["Type"], payload.get("MessageId")
    if kind not in SNS_TYPES:
        raise ValueError(f"unknown SNS message Type {kind!r}; expected one of {', '.join(SNS_TYPES)}")
    if not isinstance(sns_id, str) or not sns_id:
        raise ValueError("the SNS message has no 'MessageId'")
    if kind != "Notification":
        return [_ignored(sns_id, f"SNS {kind}")]
    message = payload.get("Message")
    if not isinstance(message, str):
        raise ValueError("the SNS Notification's 'Message' must be a string holding SES's JSON")
    try:
        inner = json.loads(message)
    except ValueError as error:
        raise ValueError(f"the SNS Notification's 'Message' is not JSON ({error}); "
                         "is this topic fed by SES bounce and complaint notifications?") from error
    return _notification(inner, sns_id)


def _notification(inner: Any, sns_id: str) -> list[Feedback]:
    if not isinstance(inner, dict):
        raise ValueError("the SES notification must be a JSON object")
    name = inner.get("notificationType", inner.get("eventType"))
    if not isinstance(name, str) or not name:
        raise ValueError("the SES notification has no 'notificationType' (or 'eventType')")
    kind = NOTIFICATION_TYPES.get(name)
    if kind is None or kind is FeedbackKind.IGNORED:
        return [_ignored(sns_id, f"SES {name} notification")]
    mail = inner.get("mail")
    if not isinstance(mail, dict):
        raise ValueError(f"the SES {name} notification has no 'mail' object")
    key = "bounce" if kind is FeedbackKind.BOUNCE else "complaint"
    report = inner.get(key)
    if not isinstance(report, dict):
        raise ValueError(f"the SES {name} notification has no '{key}' object")
    provider_id = report.get("feedbackId") or sns_id
    if not isinstance(provider_id, str):
        raise ValueError(f"the SES {name} notification has no 'feedbackId'")
    if kind is FeedbackKind.BOUNCE:
        return _bounces(report, provider_id, _our_message_id(mail))
    return _complaints(report, provider_id, _our_message_id(mail))


def _bounces(bounce: Mapping[str, Any], provider_id: str, message_id: str | None) -> list[Feedback]:
    bounce_type = bounce.get("bounceType")
    kind = BOUNCE_TYPES.get(bounce_type, FeedbackKind.IGNORED) if isinstance(bounce_type, str) \
        else FeedbackKind.IGNORED
    label = f"{bounce_type}/{bounce.get('bounceSubType')}"
    at = timestamp(bounce.get("timestamp"))
    found = []
    for recipient in _recipients(bounce, "bouncedRecipients"):
        detail = text(recipient.get("diagnosticCode")) or f"SES {label} bounce"
        if kind is not FeedbackKind.BOUNCE:
            detail = f"SES {label} bounce (not permanent): {detail}"[:500]
        found.append(Feedback(kind=kind, email=bare_address(recipient["emailAddress"]), message_id=message_id,
                              at=at, provider=PROVIDER, provider_id=provider_id, detail=detail))
    return found


def _complaints(complaint: Mapping[str, Any], provider_id: str, message_id: str | None) -> list[Feedback]:
    feedback_type = complaint.get("complaintFeedbackType")
    kind = COMPLAINT_TYPES.get(feedback_type, FeedbackKind.COMPLAINT) if isinstance(feedback_type, str) \
        else FeedbackKind.COMPLAINT
    detail = text(f"{feedback_type or 'complaint'} via {complaint.get('userAgent') or 'a feedback loop'}")
    if kind is FeedbackKind.IGNORED:
        detail = f"SES complaint of type {feedback_type}: the reader says it is not spam"
    return [Feedback(kind=kind, email=bare_address(recipient["emailAddress"]), message_id=message_id,
                     at=timestamp(complaint.get("timestamp")), provider=PROVIDER, provider_id=provider_id,
                     detail=detail)
            for recipient in _recipients(complaint, "complainedRecipients")]


def _recipients(report: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    recipients = report.get(key)
    if not isinstance(recipients, list) or not recipients:
        raise ValueError(f"the SES notification's '{key}' must be a non-empty list")
    # A broken entry is left out, not the whole notification: SNS drops what gets a 4xx,
    # and the other recipients' reports would go with it.
    usable = [r for r in recipients if isinstance(r, dict) and bare_address(r.get("emailAddress"))]
    if not usable:
        raise ValueError(f"no entry of '{key}' has an 'emailAddress'")
    return usable


def _our_message_id(mail: Mapping[str, Any]) -> str | None:
    """Our Message-ID header as SES saw it; `mail.messageId` is SES's own id, not ours."""
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and bare_message_id(common.get("messageId")):
        return bare_message_id(common.get("messageId"))
    headers = mail.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
                return bare_message_id(header.get("value"))
    return None


def _ignored(provider_id: str, reason: str) -> Feedback:
    return Feedback(kind=FeedbackKind.IGNORED, email="", message_id=None, at=None, provider=PROVIDER,
                    provider_id=provider_id, detail=reason)
