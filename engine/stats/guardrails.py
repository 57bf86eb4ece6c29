"""The guardrails' rule, pure: does a step's record of sends cross one of its funnel's thresholds?

Advertisers pause an ad whose results collapse; an email whose unsubscribe, bounce or
complaint rate crosses a threshold is paused the same way (DOMAIN.md). Complaints are
judged first: mailbox providers act on a 0.1-0.3% complaint rate long before the other
two numbers look alarming.
"""

from __future__ import annotations

from engine.sequences.plan import GuardrailPlan
from engine.store.pauses import Breach
from engine.store.stepstats import StepCounts


def judge(counts: StepCounts, rules: GuardrailPlan) -> Breach | None:
    """The first threshold this step crosses (None: it may go on), once it has `min_sends` sends."""
    if counts.sent < rules.min_sends:
        return None
    for metric, count, threshold in (
        ("complaints", counts.complained, rules.complaints),
        ("bounces", counts.bounced, rules.bounces),
        ("unsubscribes", counts.unsubscribed, rules.unsubscribes),
    ):
        if threshold is not None and count / counts.sent > threshold:
            detail = (f"{metric} {_percent(count / counts.sent)} of {counts.sent} sends ({count}), "
                      f"over the {_percent(threshold)} threshold")
            return Breach(metric, detail, counts.sent, count, threshold)
    return None


def _percent(share: float) -> str:
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%"
