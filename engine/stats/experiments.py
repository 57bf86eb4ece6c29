"""Each experiment's numbers: per variant its recipients, successes, rate with a 95% credible
interval and chance to be the best, and what the rule decides now (docs/experiments.md).

The counts are the ones the daemon allocates by (engine/store/trials.py); the decision is
engine/flow/experiment.py's on those counts. A broadcast's winner, once the daemon chose
it, is the one kept: its decision is read from the broadcast's row, not made again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import UnknownFunnelError
from engine.flow.experiment import Decision, decide
from engine.flow.variants import arms, rule_of
from engine.sequences.plan import Plan
from engine.store import broadcasts as calendar
from engine.store import trials
from engine.store.db import DbConnection


@dataclass(frozen=True)
class ExperimentReport:
    """One experimental email of a funnel: its rule, its variants' numbers, the decision."""

    funnel: str
    step: str
    broadcast: bool
    metric: str
    decision: Decision
    kept: str | None  # a broadcast's winner, chosen for good by the daemon; None: not yet, or a step

    def as_json(self) -> dict[str, Any]:
        """The report as plain values (for --json and the API)."""
        return {
            "funnel": self.funnel,
            "step": self.step,
            "broadcast": self.broadcast,
            "metric": self.metric,
            "winner": self.kept or self.decision.winner,
            "stopped": self.kept is not None or self.decision.stopped,
            "reason": self.decision.reason,
            "variants": [
                {
                    "variant": a.variant,
                    "sends": a.sends,
                    "successes": a.successes,
                    "rate": a.rate,
                    "interval": list(a.interval),
                    "probability_best": a.probability_best,
                }
                for a in self.decision.arms
            ],
        }


def experiment_reports(
    conn: DbConnection, plans: Mapping[str, Plan], funnels: Iterable[str] | None = None
) -> list[ExperimentReport]:
    """Every experiment of these funnels (default: all), in file order; UnknownFunnelError for a
    funnel `plans` does not have."""
    found: list[ExperimentReport] = []
    kept: dict[str, Mapping[str, Any]] | None = None
    for funnel in funnels if funnels is not None else sorted(plans):
        plan = plans.get(funnel)
        if plan is None:
            raise UnknownFunnelError(funnel, list(plans))
        for email in plan.emails():
            if not email.variants or email.experiment is None:
                continue
            experiment = email.experiment
            counts = trials.counts_for(conn, funnel, [(email.id, experiment.metric, experiment.attribution)])
            tried = arms(email, counts[email.id])
            is_broadcast = plan.broadcast(email.id) is not None
            row: Mapping[str, Any] = {}
            if is_broadcast:
                kept = kept if kept is not None else calendar.rows(conn)
                row = kept.get(email.id, {})
            decision = decide(tried, rule_of(experiment))
            if row.get("winner"):
                decision = Decision(
                    row["winner"], True, row.get("decision") or decision.reason, decision.arms
                )
            found.append(
                ExperimentReport(
                    funnel, email.id, is_broadcast, experiment.metric, decision, row.get("winner")
                )
            )
    return found


def report_lines(reports: Iterable[ExperimentReport]) -> list[str]:
    """The reports as text for a terminal."""
    lines: list[str] = []
    for report in reports:
        what = "broadcast" if report.broadcast else "email"
        lines.append(f"{report.funnel} {what} '{report.step}' ({report.metric}): {report.decision.reason}")
        for arm in report.decision.arms:
            rate = "-" if arm.rate is None else f"{arm.rate:.1%}"
            low, high = arm.interval
            mark = "  <- winner" if arm.variant == report.decision.winner and report.decision.stopped else ""
            lines.append(
                f"  {arm.variant:<12} {arm.sends:>8,} sent {arm.successes:>7,} {report.metric:<9} "
                f"{rate:>6} (95%: {low:.1%}-{high:.1%})  best: {arm.probability_best:.0%}{mark}"
            )
    return lines
