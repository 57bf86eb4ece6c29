"""Experiments: which variant of an email a recipient gets, and when a winner is chosen.

Pure decisions over counts, with no clock and no database: the caller passes what each
variant has so far (`Arm`) and the file's rule (`Rule`).

- `pick`: the variant for the next recipient of a sequence step. First every variant gets
  its minimum of sends; then Thompson sampling (each variant's rate is drawn from its
  Beta posterior and the highest draw wins, so a variant gets sends in proportion to the
  chance that it is the best); once `decide` says stopped, always the winner.
- `winner`: the variant everyone gets now, or None while the test runs.
- `decide`: whether the rule has a winner, the sentence that says why, and per variant
  its rate, 95% credible interval and probability of being the best.
- `split`: a broadcast recipient's fixed place: one variant's share of the sample, or the
  rest, who get the winner later.

A decision is a function of the counts alone. After a stop the winner gets every send,
so the others' counts stand still; should the winner's own rate fall back until it is no
longer best with the rule's confidence, the stop lifts and allocation resumes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from math import floor, prod

from engine.flow.betadist import chance_above, chance_largest, chance_largest_at, quantile


class Metric(StrEnum):
    """What counts as a success for a variant: a recipient who clicked, or who bought."""

    CLICKS = "clicks"  # unique clickers among its recipients
    PURCHASES = "purchases"  # unique buyers among its recipients


@dataclass(frozen=True)
class Arm:
    """What one variant has so far: its recipients and the successes among them."""

    variant: str
    sends: int
    successes: int

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.sends:
            raise ValueError(
                f"variant {self.variant!r}: {self.successes} successes in {self.sends} sends; "
                "successes count recipients, so 0 <= successes <= sends"
            )

    @property
    def posterior(self) -> tuple[int, int]:
        """Beta(1 + successes, 1 + failures): the uniform prior updated by the counts."""
        return 1 + self.successes, 1 + self.sends - self.successes


@dataclass(frozen=True)
class Rule:
    """How an experiment decides: the metric, the minimum, the confidence, the cap, the override."""

    metric: Metric
    min_sends: int = 100  # per variant, before any adapting or stopping
    confidence: float = 0.95  # stop when one variant is best with at least this probability
    max_sends: int | None = None  # in total: then stop anyway and keep the best mean
    override: str | None = None  # the file names the winner: everyone gets it

    def __post_init__(self) -> None:
        if self.min_sends < 0:
            raise ValueError(f"min_sends is {self.min_sends}; write 0 or more")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence is {self.confidence}; write a number above 0.5 and below 1")
        if self.max_sends is not None and self.max_sends < 1:
            raise ValueError(f"max_sends is {self.max_sends}; write 1 or more, or leave it out")


@dataclass(frozen=True)
class Estimate:
    """One variant in a decision: its counts, rate, 95% credible interval and chance to be best."""

    variant: str
    sends: int
    successes: int
    rate: float | None  # successes / sends; None before its first send
    interval: tuple[float, float]  # 95% of the posterior lies between these rates
    probability_best: float


@dataclass(frozen=True)
class Decision:
    """What the rule says now: the winner once stopped, the reason in words, and each variant."""

    winner: str | None
    stopped: bool
    reason: str
    arms: tuple[Estimate, ...]


def pick(arms: Sequence[Arm], rule: Rule, seed: bytes) -> str:
    """The variant for the next recipient; the same arms, rule and seed always give the same one.

    `seed` names the recipient and the email (a subscriber id and a step id, say), so a
    retry decides as the first try did.
    """
    chosen = winner(arms, rule)
    if chosen is not None:
        return chosen
    rng = random.Random(int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest()))
    behind = [arm for arm in arms if arm.sends < rule.min_sends]
    if behind:
        return rng.choice(behind).variant
    draws = [rng.betavariate(*arm.posterior) for arm in arms]
    return arms[draws.index(max(draws))].variant


def winner(arms: Sequence[Arm], rule: Rule) -> str | None:
    """The variant everyone gets now (the override, or the rule's winner), or None while testing.

    What `decide` says, without the estimates. Asked before every send of an experiment's
    email, on counts that change every few seconds (engine/scheduler/experiments.py): the
    answer is kept for the last counts seen, since the stop rule over large counts costs
    a millisecond.
    """
    return _winner(tuple(arms), rule)


@lru_cache(maxsize=256)
def _winner(arms: tuple[Arm, ...], rule: Rule) -> str | None:
    _check(arms, rule)
    if rule.override is not None:
        return rule.override
    stop = _stop(arms, rule)
    return None if stop is None else stop[0]


def decide(arms: Sequence[Arm], rule: Rule, *, final: bool = False) -> Decision:
    """The rule's decision on these counts, with each variant's estimate.

    `final`: time is up (a broadcast's sample has had its hours), so name the best so far
    even below the minimum or the confidence.
    """
    _check(arms, rule)
    chances = probability_best(arms)
    estimates = tuple(
        Estimate(
            arm.variant, arm.sends, arm.successes,
            arm.successes / arm.sends if arm.sends else None,
            credible_interval(arm.successes, arm.sends),
            chances[arm.variant],
        )
        for arm in arms
    )
    total = sum(arm.sends for arm in arms)
    if rule.override is not None:
        return Decision(rule.override, True, f"{rule.override} is chosen in the file", estimates)
    match _stop(arms, rule):
        case (chosen, True):
            return Decision(chosen, True, f"{chosen} is best with {_percent(chances[chosen])} "
                            f"probability after {total:,} sends", estimates)
        case (chosen, False):
            return Decision(chosen, True, f"no clear winner after {total:,} sends: keeping "
                            f"{chosen}, the best so far ({_percent(chances[chosen])} probability)",
                            estimates)
    if final:
        best = _best_mean(arms)
        return Decision(best, True, f"time is up after {total:,} sends: keeping {best}, "
                        f"the best so far ({_percent(chances[best])} probability)", estimates)
    behind = [arm for arm in arms if arm.sends < rule.min_sends]
    if behind:
        return Decision(None, False, _waiting(behind, rule.min_sends), estimates)
    leader = max(arms, key=lambda arm: chances[arm.variant]).variant
    return Decision(None, False, f"no winner yet after {total:,} sends: {leader} leads with "
                    f"{_percent(chances[leader])} probability, and the rule stops at "
                    f"{rule.confidence * 100:.4g}%", estimates)


def probability_best(arms: Sequence[Arm]) -> dict[str, float]:
    """Each variant's posterior probability of having the highest rate.

    Computed, not sampled: exactly for two variants, by numerical integration for more
    (`betadist.chance_largest`), so a report reads the same every time for the same counts.
    """
    chances = chance_largest([arm.posterior for arm in arms])
    return {arm.variant: chance for arm, chance in zip(arms, chances, strict=True)}


def credible_interval(successes: int, sends: int, level: float = 0.95) -> tuple[float, float]:
    """The equal-tailed credible interval of the rate: Beta(1 + s, 1 + n - s)'s quantiles."""
    a, b = 1 + successes, 1 + sends - successes
    tail = (1.0 - level) / 2.0
    return quantile(tail, a, b), quantile(1.0 - tail, a, b)


def split(key: bytes, variants: tuple[str, ...], sample_share: float) -> str | None:
    """A broadcast recipient's variant in the sample, or None for the rest (who get the winner).

    Each variant gets `sample_share / len(variants)` of the recipients, chosen by a hash of
    `key`: the same key always lands in the same place. Put the broadcast in the key
    (broadcast id + subscriber id) so each broadcast samples different people.
    """
    if not variants:
        raise ValueError("a split needs at least one variant")
    if not 0.0 < sample_share <= 1.0:
        raise ValueError(f"sample_share is {sample_share}; write a share above 0 and at most 1")
    place = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) / 2.0**64
    if place >= sample_share:
        return None
    return variants[int(place / sample_share * len(variants))]


def _stop(arms: Sequence[Arm], rule: Rule) -> tuple[str, bool] | None:
    """The winner if the rule stops on these counts, and whether it was by confidence; else None."""
    confident = None if any(arm.sends < rule.min_sends for arm in arms) else _confident(arms, rule)
    if confident is not None:
        return confident, True
    if rule.max_sends is not None and sum(arm.sends for arm in arms) >= rule.max_sends:
        return _best_mean(arms), False
    return None


def _confident(arms: Sequence[Arm], rule: Rule) -> str | None:
    """The variant that is best with at least the rule's confidence, if one is.

    Pairwise chances bound the probability of being best without the full integral: it is
    at most the smallest P(i > j), and at least their product (given i's rate, beating each
    other variant is independent and more likely the higher that rate is); the integral
    runs only when the bounds straddle the confidence.
    """
    if len(arms) == 1:
        return arms[0].variant
    for i, arm in enumerate(arms):
        above: list[float] = []
        for other in arms:
            if other is not arm:
                above.append(chance_above(arm.posterior, other.posterior))
                if above[-1] < rule.confidence:
                    break
        else:
            if prod(above) >= rule.confidence:
                return arm.variant
            chance = chance_largest_at([each.posterior for each in arms], i)
            return arm.variant if chance >= rule.confidence else None
    return None


def _best_mean(arms: Sequence[Arm]) -> str:
    """The variant with the highest posterior mean rate (the first of equals)."""
    return max(arms, key=lambda arm: (1 + arm.successes) / (2 + arm.sends)).variant


def _check(arms: Sequence[Arm], rule: Rule) -> None:
    names = [arm.variant for arm in arms]
    if not names:
        raise ValueError("an experiment needs at least one variant")
    if len(set(names)) != len(names):
        raise ValueError(f"variants are named twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    if rule.override is not None and rule.override not in names:
        raise ValueError(f"the override {rule.override!r} is not a variant; write one of {', '.join(names)}")


def _waiting(behind: Sequence[Arm], needed: int) -> str:
    """'waiting: A has 40 of the 100 sends it needs', or 'C has 12 and A 40 of ... each variant needs'."""
    arms = sorted(behind, key=lambda arm: arm.sends)
    counts = [f"{arm.variant} {arm.sends:,}" for arm in arms]
    first = f"{arms[0].variant} has {arms[0].sends:,}"
    if len(counts) == 1:
        return f"waiting: {first} of the {needed:,} sends it needs"
    listed = ", ".join([first, *counts[1:-1]]) + f" and {counts[-1]}"
    return f"waiting: {listed} of the {needed:,} sends each variant needs"


def _percent(p: float) -> str:
    """A probability in whole percent, rounded down, so that 94.96% never reads as the 95% it missed.

    Above 99%, "over 99%": counts never make a variant certain.
    """
    return "over 99%" if p > 0.99 else f"{floor(p * 100.0)}%"
