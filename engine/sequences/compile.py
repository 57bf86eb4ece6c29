"""Compile a validated Funnel model into a Plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TypedDict

from engine.sequences import model as m
from engine.sequences.broadcast_model import BroadcastEmail
from engine.sequences.plan import (
    AGAIN_SUFFIX,
    EmailStep,
    ExperimentPlan,
    GuardrailPlan,
    MagnetPlan,
    PathKind,
    PathPlan,
    Plan,
    Question,
    Role,
    Rule,
    SegmentPlan,
    SurveyPlan,
    Variant,
    WinbackPlan,
)
from engine.sequences.values import Ratio


class _Experiment(TypedDict):
    variants: tuple[Variant, ...]
    experiment: ExperimentPlan | None


def compile_funnel(funnel: m.Funnel, source: str) -> Plan:
    """Turn a funnel that passed validation into the interpreter's Plan, with a Plan of each
    further language it declares (docs/languages.md): the same steps and ids, that language's
    texts and its templates under templates/<language>/."""
    languages = tuple(funnel.languages or ())
    plan = _compile(funnel, source, languages[0] if languages else None, languages)
    if len(languages) < 2:
        return plan
    return replace(plan, translations=tuple(_compile(funnel, source, lang, languages)
                                            for lang in languages[1:]))


def text_in(text: m.Text, language: str | None, languages: tuple[str, ...] = ()) -> str:
    """A text as `language` reads it: the text itself when it is one, else that language's
    entry, else the default language's (validation reports the missing one)."""
    if isinstance(text, str):
        return text
    for lang in (language, *languages):
        if lang is not None and lang in text:
            return text[lang]
    return next(iter(text.values()), "")


class _Texts:
    """What one language's plan writes: its texts, and its templates' place under templates/."""

    def __init__(self, language: str | None, languages: tuple[str, ...]) -> None:
        self.language = language
        self.languages = languages
        # The default language's templates are the ones named; another's are under its folder.
        further = language is not None and bool(languages) and language != languages[0]
        self.folder = f"{language}/" if further else ""

    def __call__(self, text: m.Text) -> str:
        return text_in(text, self.language, self.languages)

    def template(self, name: str) -> str:
        return self.folder + name


def _compile(funnel: m.Funnel, source: str, language: str | None, languages: tuple[str, ...]) -> Plan:
    t = _Texts(language, languages)
    spacing = funnel.defaults.spacing
    ratio = funnel.defaults.ratio
    signup = funnel.signup
    confirmation = again = None
    if signup.double_opt_in and signup.confirmation:
        confirmation = _transactional(signup.confirmation, PathKind.CONFIRM, t)
        # '~' is never in a marketer's id: the resent confirmation cannot collide with one.
        again = replace(confirmation, id=confirmation.id + AGAIN_SUFFIX)
    return Plan(
        funnel=funnel.funnel,
        name=funnel.name,
        source=source,
        sender=funnel.sender.from_,
        reply_to=funnel.sender.reply_to,
        postal_address=funnel.sender.postal_address,
        thank_you_url=signup.thank_you_url,
        allowed_origins=tuple(signup.allowed_origins),
        double_opt_in=signup.double_opt_in,
        confirmation=confirmation,
        window=funnel.defaults.send_window,
        cap=funnel.defaults.frequency_cap,
        ratio=ratio,
        magnets=tuple(MagnetPlan(g.id, t(g.title), g.download_url,
                                 _transactional(g.email, PathKind.MAGNET, t))
                      for g in funnel.magnets),
        survey=_survey(funnel.survey, t) if funnel.survey else None,
        segments=tuple(_segment(s, spacing, ratio, t) for s in funnel.segments),
        vars=dict(funnel.vars),
        default_magnet=signup.default_magnet,
        allowed_redirects=tuple(signup.allowed_redirects),
        confirmation_again=again,
        consent_text=signup.consent_text,
        guardrails=GuardrailPlan(
            min_sends=funnel.guardrails.min_sends,
            unsubscribes=funnel.guardrails.unsubscribe_rate,
            bounces=funnel.guardrails.bounce_rate,
            complaints=funnel.guardrails.complaint_rate,
        ),
        winback=_winback(funnel.winback, spacing, t) if funnel.winback else None,
        products=dict(funnel.products),
        language=language,
        languages=languages,
    )


def _winback(winback: m.Winback, spacing: timedelta, t: _Texts) -> WinbackPlan:
    gap = winback.spacing or spacing
    # The first win-back email goes as soon as someone is found idle, unless it says otherwise.
    steps = tuple(EmailStep(e.id, PathKind.WINBACK, None, Role(e.role or "education"), t(e.subject),
                            t.template(e.template),
                            e.after if e.after is not None else gap if i else timedelta(0),
                            anytime=e.anytime, send_to_passed=e.send_to_passed,
                            **experiment_of(e, t))
                  for i, e in enumerate(winback.emails))
    return WinbackPlan(winback.after, winback.sunset_after, PathPlan(PathKind.WINBACK, steps))


def interleave(education: list[m.Email], offers: list[m.Email], ratio: Ratio) -> list[m.Email]:
    """Education and offer pools in the order the ratio asks: 4 education, 1 offer, repeat."""
    ordered: list[m.Email] = []
    edu, sale = list(education), list(offers)
    while edu or sale:
        ordered.extend(edu[: ratio.education])
        del edu[: ratio.education]
        ordered.extend(sale[: ratio.sale])
        del sale[: ratio.sale]
    return ordered


def path_emails(path: m.Path, ratio: Ratio) -> list[m.Email]:
    """A path's emails in sending order, whichever way the file wrote them."""
    if path.emails is not None:
        return list(path.emails)
    return interleave(path.education or [], path.offers or [], ratio)


def email_role(email: m.Email, path: m.Path | m.SalesPath) -> Role:
    """An email's role: given by its pool, else as written, else 'sale' in a sales path.

    In pools the pool decides; a contradicting `role:` is reported once by the validator.
    """
    if isinstance(path, m.Path):
        if path.offers and any(e is email for e in path.offers):
            return Role.SALE
        if path.education and any(e is email for e in path.education):
            return Role.EDUCATION
    if email.role is not None:
        return Role(email.role)
    return Role.SALE if isinstance(path, m.SalesPath) else Role.EDUCATION


def exit_products(exit_on: object) -> frozenset[str] | None:
    """None (any purchase) for 'purchase'; the listed products for {purchase: [...]}."""
    if isinstance(exit_on, dict):
        listed = exit_on.get("purchase")
        items = [listed] if isinstance(listed, str) else listed if isinstance(listed, list) else []
        return frozenset(p for p in items if isinstance(p, str))
    return None


def experiment_of(email: m.Email | BroadcastEmail, t: _Texts | None = None) -> _Experiment:
    """An email's variants and rule, as EmailStep's keyword arguments (none: it has one version).

    A variant takes the email's own subject or template where it does not give its own; in
    a further language, that language's subject and the template under its folder.
    """
    written = email.experiment
    if not email.variants or written is None:
        return {"variants": (), "experiment": None}
    texts = t or _Texts(None, ())
    variants = tuple(Variant(v.id, texts(v.subject if v.subject is not None else email.subject),
                             texts.template(v.template if v.template is not None else email.template))
                     for v in email.variants)
    rule = ExperimentPlan(metric=written.metric, min_sends=written.min_sends,
                          confidence=written.confidence, max_sends=written.max_sends,
                          winner=written.winner, sample=written.sample,
                          decide_after=written.decide_after or ExperimentPlan.decide_after,
                          attribution=written.attribution)
    return {"variants": variants, "experiment": rule}


def _transactional(email: m.TransactionalEmail, kind: PathKind, t: _Texts) -> EmailStep:
    return EmailStep(email.id, kind, None, Role.TRANSACTIONAL, t(email.subject), t.template(email.template))


def _survey(survey: m.Survey, t: _Texts) -> SurveyPlan:
    rules = [Rule(tuple((q, frozenset([a] if isinstance(a, str) else a))
                        for q, a in r.when.items()), r.segment) for r in survey.rules]
    for question in survey.questions:
        for answer in question.answers:
            if answer.segment:
                rules.append(Rule(((question.id, frozenset([answer.id])),), answer.segment))
    return SurveyPlan(
        email=_transactional(survey.email, PathKind.SURVEY, t),
        after=survey.after,
        wait=survey.wait,
        default_segment=survey.default_segment,
        questions=tuple(Question(q.id, t(q.text), tuple((a.id, t(a.label)) for a in q.answers))
                        for q in survey.questions),
        rules=tuple(rules),
    )


def _segment(segment: m.Segment, spacing: timedelta, ratio: Ratio, t: _Texts) -> SegmentPlan:
    def build(kind: PathKind, path: m.Path | m.SalesPath, emails: list[m.Email]) -> PathPlan:
        gap = path.spacing or spacing
        return PathPlan(kind, tuple(
            EmailStep(e.id, kind, segment.id, email_role(e, path), t(e.subject), t.template(e.template),
                      e.after if e.after is not None else gap, e.last_chance, e.anytime,
                      send_to_passed=e.send_to_passed, **experiment_of(e, t))
            for e in emails))

    return SegmentPlan(
        id=segment.id,
        name=segment.name,
        nurture=build(PathKind.NURTURE, segment.nurture, path_emails(segment.nurture, ratio)),
        sales=build(PathKind.SALES, segment.sales, list(segment.sales.emails)),
        customer=build(PathKind.CUSTOMER, segment.customer, path_emails(segment.customer, ratio)),
        exit_products=exit_products(segment.sales.exit_on),
    )
