"""Postmark webhooks (bounce, spam complaint, subscription change) as `Feedback`.

Postmark posts one JSON record per event; `RecordType` says which webhook sent it.
Bounce and SpamComplaint records carry a `Type` (HardBounce, SoftBounce, SpamComplaint,
...), the recipient in `Email` and the record's numeric `ID`. Broadcast streams report
complaints only as a SubscriptionChange (`SuppressionReason`), so that is read too.
`MessageID` is Postmark's id, not ours: our Message-ID comes from the `message_id`
metadata (an `X-PM-Metadata-message_id` header) or from the bounce dump in `Content`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.feedback import Feedback, FeedbackKind, bare_address, bare_message_id, text, timestamp

PROVIDER = "postmark"
IGNORED = FeedbackKind.IGNORED

# RecordType -> what it is; None: the record's Type (BOUNCE_TYPES) or SuppressionReason
# (SUPPRESSION_REASONS) decides. Record types not listed are ignored, never refused:
# Postmark retries a webhook that does not answer 2xx.
RECORD_TYPES: dict[str, FeedbackKind | None] = {
    "Bounce": None,
    "SpamComplaint": None,
    "SubscriptionChange": None,
    "Delivery": IGNORED,
    "Open": IGNORED,
    "Click": IGNORED,
}
# Bounce and spam-complaint Type -> what it is. Only a bounce that says the address does not
# exist suppresses it; soft, transient and auto-replies are ignored (Postmark's bounce types).
BOUNCE_TYPES: dict[str, FeedbackKind] = {
    "HardBounce": FeedbackKind.BOUNCE,
    "BadEmailAddress": FeedbackKind.BOUNCE,
    "SpamComplaint": FeedbackKind.COMPLAINT,
    "SpamNotification": FeedbackKind.COMPLAINT,
    "Transient": IGNORED,
    "SoftBounce": IGNORED,
    "DnsError": IGNORED,
    "AutoResponder": IGNORED,
    "AddressChange": IGNORED,
    "ChallengeVerification": IGNORED,
    "OpenRelayTest": IGNORED,
    "VirusNotification": IGNORED,
    "Unsubscribe": IGNORED,
    "Subscribe": IGNORED,
    "Unconfirmed": IGNORED,
    "Blocked": IGNORED,  # the receiving network blocked the sender, not this address
    "DMARCPolicy": IGNORED,
    "ManuallyDeactivated": IGNORED,
    "SMTPApiError": IGNORED,
    "InboundError": IGNORED,
    "TemplateRenderingFailed": IGNORED,
    "Unknown": IGNORED,
}
# SubscriptionChange.SuppressionReason, when SuppressSending is true.
SUPPRESSION_REASONS: dict[str, FeedbackKind] = {
    "HardBounce": FeedbackKind.BOUNCE,
    "SpamComplaint": FeedbackKind.COMPLAINT,
    "ManualSuppression": IGNORED,  # an operator's or a recipient's unsubscribe at Postmark
}
# The original message's Message-ID in a bounce or abuse-report dump: the last one, since the
# report's own headers come first and the returned message last (RFC 3464, RFC 5965).
_MESSAGE_ID_HEADER = re.compile(r"^message-id:[ \t]*(?:\r?\n[ \t]+)?<([^<>\s]+)>", re.I | re.M)
_DUMP_SCANNED = 200_000  # characters of `Content` searched; dumps carry the whole message


def parse(payload: Any) -> list[Feedback]:
    """The feedback in one Postmark webhook record; ValueError when it is malformed."""
    if not isinstance(payload, dict):
        raise ValueError("a Postmark webhook body is one JSON object with 'RecordType'")
    record_type = payload.get("RecordType")
    if not isinstance(record_type, str) or not record_type:
        hint = " (this looks like the inbound webhook)" if "FromFull" in payload else ""
        raise ValueError(f"the Postmark record has no 'RecordType'{hint}")
    if record_type not in RECORD_TYPES:
        return [_ignored(payload, f"Postmark {record_type} record")]
    if RECORD_TYPES[record_type] is IGNORED:
        return [_ignored(payload, f"Postmark {record_type} record")]
    if record_type == "SubscriptionChange":
        return [_subscription_change(payload)]
    return [_bounce(payload, record_type)]


def _bounce(record: Mapping[str, Any], record_type: str) -> Feedback:
    record_id, kind_name = record.get("ID"), record.get("Type")
    if isinstance(record_id, bool) or not isinstance(record_id, int | str) or record_id == "":
        raise ValueError(f"the Postmark {record_type} record has no 'ID'")
    if not isinstance(kind_name, str) or not kind_name:
        raise ValueError(f"the Postmark {record_type} record has no 'Type' (HardBounce, SpamComplaint, ...)")
    email = bare_address(record.get("Email"))
    if not email:
        raise ValueError(f"the Postmark {record_type} record has no 'Email'")
    kind = BOUNCE_TYPES.get(kind_name, IGNORED)
    detail = text(record.get("Details")) or text(record.get("Description")) or kind_name
    if kind is IGNORED:
        detail = text(f"Postmark {kind_name}: {detail}")
    return Feedback(kind=kind, email=email, message_id=_our_message_id(record),
                    at=timestamp(record.get("BouncedAt")), provider=PROVIDER, provider_id=str(record_id),
                    detail=detail)


def _subscription_change(record: Mapping[str, Any]) -> Feedback:
    email = bare_address(record.get("Recipient"))
    message_id, changed_at = record.get("MessageID"), record.get("ChangedAt")
    if not email:
        raise ValueError("the Postmark SubscriptionChange record has no 'Recipient'")
    if not isinstance(message_id, str) or not isinstance(changed_at, str):
        raise ValueError("the Postmark SubscriptionChange record needs 'MessageID' and 'ChangedAt'")
    reason = record.get("SuppressionReason")
    if record.get("SuppressSending") is not True:
        kind, detail = IGNORED, "Postmark SubscriptionChange: sending reactivated"
    else:
        kind = SUPPRESSION_REASONS.get(reason, IGNORED) if isinstance(reason, str) else IGNORED
        detail = text(f"Postmark SubscriptionChange: {reason} by {record.get('Origin') or 'Postmark'}")
    return Feedback(kind=kind, email=email, message_id=_our_message_id(record), at=timestamp(changed_at),
                    provider=PROVIDER, provider_id=f"{message_id}:{changed_at}", detail=detail)


def _our_message_id(record: Mapping[str, Any]) -> str | None:
    metadata = record.get("Metadata")
    if isinstance(metadata, dict) and bare_message_id(metadata.get("message_id")):
        return bare_message_id(metadata.get("message_id"))
    content = record.get("Content")
    if isinstance(content, str):
        found = _MESSAGE_ID_HEADER.findall(content[:_DUMP_SCANNED])
        if found:
            return bare_message_id(found[-1])
    return None


def _ignored(record: Mapping[str, Any], reason: str) -> Feedback:
    record_id = record.get("ID") or record.get("MessageID") or ""
    email = bare_address(record.get("Email") or record.get("Recipient"))
    return Feedback(kind=IGNORED, email=email, message_id=None, at=None, provider=PROVIDER,
                    provider_id=str(record_id)[:100], detail=reason)
