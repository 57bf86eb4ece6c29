"""Settings that can never take effect: `funnel validate` warns about them and still exits 0.

A warning is a SequenceError whose problem starts with 'warning: '; it is checked only on
a file without errors, against its compiled plan (the delays as the interpreter uses them).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from engine.errors import SequenceError
from engine.sequences import model as m
from engine.sequences.loader import Marks
from engine.sequences.plan import EmailStep, PathPlan, Plan
from engine.sequences.validate import marketing_emails
from engine.sequences.values import format_delay
from engine.sequences.window import SendWindow

WARNING = "warning: "
_WEEK = timedelta(days=7)


def warn_funnel(funnel: m.Funnel, plan: Plan, marks: Marks) -> list[SequenceError]:
    """Every setting of `funnel` that can never take effect, in file order."""
    experiments = [warning for email in marketing_emails(funnel) if (step := plan.email(email.id))
                   for warning in warn_experiment(email, step, f"email '{email.id}'", marks)]
    return [*_winback_never_fires(funnel, plan, marks), *_unused_spacing(funnel, marks), *experiments]


def warn_experiment(written: m.Node, email: EmailStep, label: str,
                    marks: Marks) -> Iterator[SequenceError]:
    """An experiment's settings that cannot take effect: two variants that are one email, a
    `max_sends` reached before every variant has its `min_sends`, an `attribution` with clicks.

    `written` is the email as its file has it (a sequence email or a broadcast's), `email` as
    compiled.
    """
    rule = email.experiment
    experiment = getattr(written, "experiment", None)
    if rule is None or experiment is None:
        return
    seen: dict[tuple[str, str], str] = {}
    for i, variant in enumerate(email.variants):
        same = seen.setdefault((variant.subject, variant.template), variant.id)
        if same != variant.id:
            yield _warning(marks, (*written._where, "variants", i), f"variants '{same}' and "
                           f"'{variant.id}' of {label} are the same email (one subject, one "
                           "template): the experiment cannot tell them apart",
                           f"give '{variant.id}' its own subject or template, or remove it")
    needed = rule.min_sends * len(email.variants)
    if rule.winner is None and rule.max_sends is not None and rule.max_sends < needed:
        yield _warning(marks, (*experiment._where, "max_sends"), f"'max_sends: {rule.max_sends}' "
                       f"ends the experiment of {label} before its {len(email.variants)} variants "
                       f"have their 'min_sends: {rule.min_sends}' each ({needed} sends): the best "
                       "so far would be kept on too few sends",
                       f"write 'max_sends: {needed}' or more, or lower 'min_sends'")
    if rule.metric == "clicks" and "attribution" in experiment.model_fields_set:
        yield _warning(marks, (*experiment._where, "attribution"), f"'attribution' of {label} is "
                       "never used: it times purchases, and the metric is clicks",
                       "remove it, or write 'metric: purchases'")


def _winback_never_fires(funnel: m.Funnel, plan: Plan, marks: Marks) -> Iterator[SequenceError]:
    """Win-back whose `after` is longer than any subscriber's marketing can last.

    Idle time counts from the latest open, click, answer, purchase or confirmation, and is
    judged only when a marketing email is due (engine/flow/step.py). The latest such email
    comes at most this long after the confirmation: the survey's `after` and `wait`, then
    each email's delay plus the longest closed stretch of the send window. A purchase is
    engagement itself, so a customer path is bounded the same way.
    """
    if funnel.winback is None or plan.winback is None:
        return
    joining = plan.survey.after + plan.survey.wait if plan.survey else timedelta(0)
    gap = _longest_closed(plan.window)
    spans = {segment.id: joining + max(_span(segment.nurture, gap) + _span(segment.sales, gap),
                                       _span(segment.customer, gap))
             for segment in plan.segments}
    longest = max(spans.values(), default=timedelta(0))
    if plan.winback.after <= longest:
        return
    where = (*funnel.winback._where, "after")
    each = ", ".join(f"segment '{s}' {format_delay(span)}" for s, span in spans.items())
    yield _warning(marks, where, (
        f"win-back 'after: {format_delay(plan.winback.after)}' can never fire: the last "
        f"marketing email is due at most {format_delay(longest)} after a subscriber joins ({each}, "
        "counting waits for the send window, not days the frequency cap holds mail back), so an "
        "idle subscriber gets every email and never the win-back"),
        f"write 'after: {format_delay(longest)}' or less, or add emails to the paths")


def _span(path: PathPlan, gap: timedelta) -> timedelta:
    """How long a path can take: each email's delay, each perhaps waiting out a closed window."""
    return sum((step.after + gap for step in path.steps), timedelta(0))


def _longest_closed(window: SendWindow | None) -> timedelta:
    """The longest time the send window stays shut in a week (zero without a window)."""
    if window is None or not window.days:
        return timedelta(0)
    start = timedelta(hours=window.start.hour, minutes=window.start.minute)
    end = timedelta(hours=window.end.hour, minutes=window.end.minute)
    opens = sorted(day * timedelta(days=1) + start for day in window.days)
    # Each opening is followed by a closed stretch until the next opening (a week on, last).
    return max(nxt - (this - start + end) for this, nxt in zip(opens, [*opens[1:], opens[0] + _WEEK],
                                                                 strict=True))


def _unused_spacing(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    """A `spacing` that no email uses, because every email of its path gives its own `after`."""
    paths: list[tuple[str, m.Path | m.SalesPath | m.Winback]] = []
    for segment in funnel.segments:
        paths += [(f"{kind} path of segment '{segment.id}'", getattr(segment, kind))
                  for kind in ("nurture", "sales", "customer")]
    if funnel.winback:
        paths.append(("win-back section", funnel.winback))
    for label, path in paths:
        emails = _emails(path)
        if path.spacing is not None and emails and all(e.after is not None for e in emails):
            yield _warning(marks, (*path._where, "spacing"),
                           f"'spacing: {format_delay(path.spacing)}' of the {label} is never used: "
                           "every email of the path gives its own 'after'",
                           "remove 'spacing', or remove 'after' from the emails it should time")


def _emails(path: m.Path | m.SalesPath | m.Winback) -> list[m.Email]:
    if isinstance(path, m.Path):
        return [*(path.emails or []), *(path.education or []), *(path.offers or [])]
    return list(path.emails)


def _warning(marks: Marks, where: tuple[str | int, ...], problem: str, fix: str) -> SequenceError:
    return marks.error(where, WARNING + problem, fix)
