"""Check a broadcast file: its structure (the model), then against the funnel it goes to.

The structure's errors are worded by structure.py, as a sequence file's are, with the
broadcast's model at each place. A broadcast whose funnel file is broken is checked without
the funnel: its own mistakes only, none guessed from a funnel that did not load.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from engine.errors import SequenceError, did_you_mean
from engine.sequences import model as m
from engine.sequences.broadcast_model import LEFT_OUT_STAGES, STAGES, Broadcast
from engine.sequences.compile import exit_products
from engine.sequences.experiment_check import check_experiment
from engine.sequences.loader import Document, Marks, Path
from engine.sequences.plan import BroadcastPlan
from engine.sequences.structure import attach_positions, translate
from engine.sequences.validate import all_emails
from engine.sequences.warnings import WARNING, warn_experiment

DOCS = "see docs/broadcasts.md"


def parse_broadcast(doc: Document) -> tuple[Broadcast | None, list[SequenceError]]:
    """Validate the document's structure; the Broadcast (with positions attached) or the errors."""
    if not isinstance(doc.data, dict):
        return None, [doc.marks.error((), "a broadcast file must be a set of 'key: value' lines",
                                      f"start it with 'broadcast: <id>' ({DOCS})")]
    try:
        broadcast = Broadcast.model_validate(doc.data)
    except ValidationError as exc:
        return None, translate(exc.errors(), doc, Broadcast, DOCS)
    attach_positions(broadcast, ())
    return broadcast, []


def check_broadcast(broadcast: Broadcast, marks: Marks, funnel: m.Funnel | None,
                    funnel_ids: Iterable[str]) -> list[SequenceError]:
    """Every rule `broadcast` breaks, in file order.

    `funnel` is its funnel's model when that file loaded; `funnel_ids` every funnel id the
    project declares, broken files too (a broadcast to a broken funnel is not 'unknown').
    """
    errors: list[SequenceError] = []
    known = sorted(set(funnel_ids))
    if broadcast.funnel not in known:
        errors.append(marks.error(("funnel",), f"no funnel '{broadcast.funnel}'",
                                  did_you_mean(broadcast.funnel, known, f"write one of: {', '.join(known)}"
                                               if known else "add its sequence file to sequences/")))
    if funnel is not None:
        errors.extend(_step_id(broadcast, marks, funnel))
        errors.extend(_segments(broadcast, marks, funnel))
    errors.extend(_stages(broadcast, marks))
    if funnel is not None:
        errors.extend(_answers(broadcast, marks, funnel))
    errors.extend(_signup_dates(broadcast, marks))
    errors.extend(check_experiment(broadcast.email, "the broadcast's email", marks, broadcast=True))
    for i, variant in enumerate(broadcast.email.variants or []):
        if isinstance(variant.subject, dict):  # docs/languages.md: broadcasts are in one language
            errors.append(marks.error(("email", "variants", i, "subject"), "a broadcast is written in "
                                      "one language: its subjects are not given per language",
                                      "write the subject in the funnel's default language, as text"))
    if broadcast.email.role == "education" and broadcast.send.when_ratio_breaks is not None:
        errors.append(marks.error(("send", "when_ratio_breaks"), "'when_ratio_breaks' is for sale "
                                  "broadcasts: an education email never breaks the ratio",
                                  "remove it, or write 'role: sale' if this email sells"))
    return errors


def warn_broadcast(
    broadcast: Broadcast, plan: BroadcastPlan, marks: Marks, funnel: m.Funnel
) -> list[SequenceError]:
    """Settings that may never take effect: products the funnel names nowhere (not errors:
    purchases come from shops, which may sell what no sequence file names), and an experiment's
    settings that cannot (engine/sequences/warnings.py). `plan`: the broadcast compiled."""
    named = set(funnel.products)
    for segment in funnel.segments:
        named |= exit_products(segment.sales.exit_on) or set()
    warnings = []
    for key in ("bought", "not_bought"):
        for i, product in enumerate(getattr(broadcast.audience, key) or []):
            if product not in named:
                fix = did_you_mean(product, sorted(named), "check the product id your shop sends "
                                   "with purchases (funnel subscribers show lists a subscriber's)")
                warnings.append(marks.error(("audience", key, i), f"{WARNING}funnel "
                                            f"'{funnel.funnel}' names no product '{product}' (in "
                                            "'products:' or an 'exit_on'); nobody may have bought "
                                            "it", fix))
    warnings.extend(warn_experiment(broadcast.email, plan.email,
                                    "the broadcast's email", marks))
    return warnings


def _step_id(broadcast: Broadcast, marks: Marks, funnel: m.Funnel) -> Iterator[SequenceError]:
    """The broadcast's id is its email's step id in its funnel: it must not be a sequence email's."""
    if any(email.id == broadcast.broadcast for email in all_emails(funnel)):
        yield marks.error(("broadcast",), f"broadcast id '{broadcast.broadcast}' is also the id of "
                          f"an email of funnel '{funnel.funnel}' (a broadcast's id is its step id "
                          "in stats, so the two would count as one)",
                          f"rename the broadcast, like '{broadcast.broadcast}-broadcast'")


def _segments(broadcast: Broadcast, marks: Marks, funnel: m.Funnel) -> Iterator[SequenceError]:
    known = [s.id for s in funnel.segments]
    for i, segment in enumerate(broadcast.audience.segments or []):
        if segment not in known:
            yield marks.error(("audience", "segments", i), f"funnel '{funnel.funnel}' has no "
                              f"segment '{segment}'",
                              did_you_mean(segment, known, f"write one of: {', '.join(known)}"))


def _stages(broadcast: Broadcast, marks: Marks) -> Iterator[SequenceError]:
    allowed = [s for s in STAGES if s not in LEFT_OUT_STAGES]
    for i, stage in enumerate(broadcast.audience.stages or []):
        where = ("audience", "stages", i)
        if stage in LEFT_OUT_STAGES:
            yield marks.error(where, f"stage '{stage}' never gets a broadcast: the unconfirmed "
                              "and those in win-back or sunset are always left out",
                              f"remove it (the stages to choose from: {', '.join(allowed)})")
        elif stage not in STAGES:
            yield marks.error(where, f"no stage '{stage}'",
                              did_you_mean(stage, allowed, f"write one of: {', '.join(allowed)}"))


def _answers(broadcast: Broadcast, marks: Marks, funnel: m.Funnel) -> Iterator[SequenceError]:
    answers = broadcast.audience.answers
    if not answers:
        return
    if funnel.survey is None:
        yield marks.error(("audience", "answers"), f"funnel '{funnel.funnel}' has no survey, so "
                          "nobody has answers", "remove 'answers:'", key=True)
        return
    questions = {q.id: [a.id for a in q.answers] for q in funnel.survey.questions}
    for question, accepted in answers.items():
        where: Path = ("audience", "answers", question)
        if question not in questions:
            yield marks.error(where, f"funnel '{funnel.funnel}' has no survey question '{question}'",
                              did_you_mean(question, list(questions),
                                           f"write one of: {', '.join(questions)}"), key=True)
            continue
        listed = [accepted] if isinstance(accepted, str) else accepted
        for i, answer in enumerate(listed):
            if answer not in questions[question]:
                at = where if isinstance(accepted, str) else (*where, i)
                options = questions[question]
                yield marks.error(at, f"question '{question}' has no answer '{answer}'",
                                  did_you_mean(answer, options, f"write one of: {', '.join(options)}"))


def _signup_dates(broadcast: Broadcast, marks: Marks) -> Iterator[SequenceError]:
    after, before = broadcast.audience.signed_up_after, broadcast.audience.signed_up_before
    if after is not None and before is not None and after >= before:
        yield marks.error(("audience", "signed_up_before"), "'signed_up_before' is not later than "
                          "'signed_up_after': nobody signed up in between",
                          "swap them, or fix one of the dates")
