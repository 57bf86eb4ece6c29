"""The status enums write the same plain strings as before, wherever a status is shown."""

from __future__ import annotations

import json

from engine.flow.status import BLOCKED_STATUSES, SubscriberStatus
from engine.store.status import LEFT, NOT_SENT, PENDING, DeliveryStatus


def test_a_status_is_its_plain_string_in_json_text_and_comparisons() -> None:
    assert json.dumps({"status": DeliveryStatus.SENT}) == '{"status": "sent"}'
    assert (str(DeliveryStatus.BOUNCED), f"{SubscriberStatus.COMPLAINED}") == ("bounced", "complained")
    assert "-".join([DeliveryStatus.QUEUED, SubscriberStatus.ACTIVE]) == "queued-active"
    assert DeliveryStatus("deferred") is DeliveryStatus.DEFERRED and DeliveryStatus.DEFERRED == "deferred"


def test_the_groups_of_statuses_are_the_ones_the_queries_always_used() -> None:
    assert PENDING == ("queued", "deferred", "sending")  # /metrics shows them in this order
    assert set(NOT_SENT) == {"failed", "bounced", "rejected", "suppressed", "cancelled"}
    assert set(LEFT) == {"sent", "bounced", "unknown"}
    assert BLOCKED_STATUSES == ("bounced", "complained")
    assert {s.value for s in DeliveryStatus} == {
        "queued", "deferred", "sending", "sent", "bounced", "rejected", "unknown", "failed", "suppressed",
        "cancelled",
    }
    assert {s.value for s in SubscriberStatus} == {"active", "unsubscribed", "bounced", "complained"}
