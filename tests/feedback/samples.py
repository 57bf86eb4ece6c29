"""The sample webhook payloads in tests/data/webhooks/, and ways to aim them at a test's people."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "webhooks"
SAMPLE_MESSAGE_ID = "5f0c2a9e3b7d4e1a8c6f2b9d0e4a7c31@example.com"  # in every sample that names one


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of tests/data/webhooks/`name`.json."""
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def ses_inner(payload: dict[str, Any]) -> dict[str, Any]:
    """The SES notification inside an SNS envelope."""
    inner: dict[str, Any] = json.loads(payload["Message"])
    return inner


def ses_repacked(payload: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    """The SNS envelope `payload` carrying `inner` instead."""
    return {**copy.deepcopy(payload), "Message": json.dumps(inner, separators=(",", ":"))}


def ses_about(name: str, recipients: list[str], message_id: str | None, feedback_id: str | None = None
              ) -> dict[str, Any]:
    """An SES sample (SNS envelope) naming `recipients` and our `message_id` (None: no headers)."""
    payload = sample(name)
    inner = ses_inner(payload)
    report = inner["complaint"] if "complaint" in inner else inner["bounce"]
    key = "complainedRecipients" if "complaint" in inner else "bouncedRecipients"
    template = report[key][0]
    report[key] = [{**template, "emailAddress": address} for address in recipients]
    if feedback_id is not None:
        report["feedbackId"] = feedback_id
    inner["mail"].pop("headers", None)
    inner["mail"].pop("commonHeaders", None)
    if message_id is not None:
        inner["mail"]["commonHeaders"] = {"from": ["Team <team@example.com>"], "to": recipients,
                                          "messageId": f"<{message_id}>", "subject": "E1"}
    return ses_repacked(payload, inner)


def postmark_about(name: str, email: str, message_id: str | None, record_id: int | None = None
                   ) -> dict[str, Any]:
    """A Postmark sample naming `email` and our `message_id` in its metadata (None: in neither place)."""
    payload = sample(name)
    payload["Email"] = email
    payload["Metadata"] = {"message_id": message_id} if message_id else {}
    payload.pop("Content", None)
    if record_id is not None:
        payload["ID"] = record_id
    return payload
