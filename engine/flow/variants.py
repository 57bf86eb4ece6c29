"""Which variant of an email a recipient gets: the experiment's rule applied at the moment it is sent.

Pure: the counts come in `Facts.trials`, the recipient's seed in `Facts.key`, and the
decisions themselves are engine/flow/experiment.py's. `step` calls `for_step` for a
sequence email with variants (adaptive allocation while subscribers flow through: the
minimum per variant, then Thompson sampling, then the winner) and `for_broadcast` for a
broadcast's (a fixed share of the audience tries the variants; the rest wait for the
winner). The variant chosen travels with the `Send` and is stored on the delivery, so a
retry or a restart sends the same version.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.flow.experiment import Arm, Metric, Rule, pick, split
from engine.flow.state import Facts
from engine.sequences.plan import BroadcastPlan, EmailStep, ExperimentPlan


def rule_of(experiment: ExperimentPlan) -> Rule:
    """The experiment's rule as the decisions take it."""
    return Rule(Metric(experiment.metric), experiment.min_sends, experiment.confidence,
                experiment.max_sends, experiment.winner)


def arms(email: EmailStep, counts: Iterable[tuple[str, int, int]]) -> tuple[Arm, ...]:
    """Each variant of `email` with its (variant, sends, successes) counts, in the file's order; a
    variant with none yet starts at zero (and counts of a variant the file no longer has are left out)."""
    known = {variant: (sends, successes) for variant, sends, successes in counts}
    return tuple(Arm(v.id, *known.get(v.id, (0, 0))) for v in email.variants)


def arms_of(email: EmailStep, facts: Facts) -> tuple[Arm, ...]:
    """Each variant's counts as the facts have them."""
    trial = facts.trials.get(email.id)
    return arms(email, trial.arms if trial else ())


def for_step(email: EmailStep, facts: Facts) -> str | None:
    """The variant of a sequence email for this recipient (None: the email has no variants)."""
    if not email.variants or email.experiment is None:
        return None
    ids = {v.id for v in email.variants}
    if facts.variant in ids:
        return facts.variant
    return pick(arms_of(email, facts), rule_of(email.experiment), f"{facts.key}:{email.id}".encode())


def sampled(broadcast: BroadcastPlan) -> ExperimentPlan | None:
    """The broadcast's experiment while it is tried on a sample: None when it has none, or when
    its file names the winner (then everyone gets that one, at their own time)."""
    experiment = broadcast.email.experiment
    if not broadcast.email.variants or experiment is None or experiment.sample is None:
        return None
    return None if experiment.winner is not None else experiment


def sample_place(broadcast: BroadcastPlan, key: str) -> str | None:
    """The variant a broadcast recipient tries, or None: they are the rest, who get the winner.

    Fixed by the recipient's key, so the daemon (timing the rest later) and `step` agree.
    """
    experiment = sampled(broadcast)
    if experiment is None or experiment.sample is None:
        return None
    ids = tuple(v.id for v in broadcast.email.variants)
    return split(f"{broadcast.id}:{key}".encode(), ids, experiment.sample)


def for_broadcast(broadcast: BroadcastPlan, facts: Facts) -> tuple[bool, str | None]:
    """(ready, variant) of a broadcast for this recipient: not ready while they are of the rest and
    no winner is chosen yet."""
    email = broadcast.email
    if not email.variants or email.experiment is None:
        return True, None
    ids = {v.id for v in email.variants}
    if facts.variant in ids:
        return True, facts.variant
    tried = sample_place(broadcast, facts.key)
    if tried is not None:
        return True, tried
    trial = facts.trials.get(email.id)
    chosen = email.experiment.winner or (trial.winner if trial else None)
    return chosen is not None, chosen
