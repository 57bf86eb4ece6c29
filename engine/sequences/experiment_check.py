"""Check an email's variants and experiment, in a sequence file or a broadcast file.

The rule's numbers (metric, confidence, the counts) are checked by the model; here, what
needs the email as a whole: variants and experiment come together, two or more variants
with their own ids, a `winner` that names one of them, and the keys that belong to a
broadcast's test only (docs/experiments.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import SequenceError, did_you_mean
from engine.sequences import model as m
from engine.sequences.broadcast_model import BroadcastEmail
from engine.sequences.loader import Marks

DOCS = "docs/experiments.md"
# Keys of a broadcast's test only: a sequence email keeps testing while people flow through.
BROADCAST_ONLY = ("sample", "decide_after")


def check_experiment(email: m.Email | BroadcastEmail, label: str, marks: Marks, *,
                     broadcast: bool) -> Iterator[SequenceError]:
    """Every rule `email`'s variants and experiment break; `label` names the email in errors."""
    where = email._where
    variants, experiment = email.variants, email.experiment
    if variants is None and experiment is None:
        return
    if experiment is None:
        yield marks.error((*where, "variants"), f"{label} has variants but no experiment",
                          "add 'experiment:' with 'metric: clicks' or 'metric: purchases' "
                          f"({DOCS}), or remove 'variants:'", key=True)
    if variants is None:
        yield marks.error((*where, "experiment"), f"{label} has an experiment but no variants",
                          "add 'variants:' with two or more versions (each an id, and a subject, "
                          "a template or both), or remove 'experiment:'", key=True)
    elif len(variants) < 2:
        yield marks.error((*where, "variants"), f"{label} has {len(variants)} variant"
                          f"{'' if len(variants) == 1 else 's'}; an experiment compares two or more",
                          "add another, like '- {id: plain}' (the email as written)", key=True)
    ids: dict[str, m.Variant] = {}
    for variant in variants or []:
        if variant.id in ids:
            line = marks.at((*ids[variant.id]._where, "id")).line
            yield marks.error((*variant._where, "id"), f"duplicate variant id '{variant.id}' in "
                              f"{label} (first used at line {line})", "give each variant its own id")
        else:
            ids[variant.id] = variant
    if experiment is None:
        return
    if variants is not None and experiment.winner is not None and experiment.winner not in ids:
        known = list(ids)
        yield marks.error((*experiment._where, "winner"), f"'winner: {experiment.winner}' is not a "
                          f"variant of {label}",
                          did_you_mean(experiment.winner, known, f"write one of: {', '.join(known)}"
                                       if known else "name one of its variants"))
    if broadcast and experiment.sample is None:
        yield marks.error(experiment._where, "a broadcast's experiment needs 'sample'",
                          "add 'sample: 20%' (the share of the audience that tries the variants, "
                          "evenly; the rest get the winner)", key=True)
    if not broadcast:
        for key in BROADCAST_ONLY:
            if getattr(experiment, key) is not None:
                yield marks.error((*experiment._where, key), f"'{key}' is for broadcasts: a "
                                  "sequence email keeps testing while people flow through",
                                  f"remove '{key}'", key=True)
