"""Rules a well-formed funnel must still obey: unique ids, references, reach, the ratio."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.errors import SequenceError, did_you_mean
from engine.sequences import model as m
from engine.sequences.compile import email_role, exit_products, path_emails
from engine.sequences.experiment_check import check_experiment
from engine.sequences.languages_check import check_languages
from engine.sequences.loader import Marks
from engine.sequences.plan import Role
from engine.sequences.values import Ratio


def check_funnel(funnel: m.Funnel, marks: Marks) -> list[SequenceError]:
    """Every rule broken by `funnel`, in file order."""
    checks = (_languages, _unique_ids, _signup, _survey, _reach, _paths, _products, _experiments)
    return [error for check in checks for error in check(funnel, marks)]


def all_emails(funnel: m.Funnel) -> Iterator[m.TransactionalEmail | m.Email]:
    """Every email of the funnel, as written in the file."""
    if funnel.signup.confirmation:
        yield funnel.signup.confirmation
    for magnet in funnel.magnets:
        yield magnet.email
    if funnel.survey:
        yield funnel.survey.email
    for segment in funnel.segments:
        for path in (segment.nurture, segment.customer):
            yield from path.emails or []
            yield from path.education or []
            yield from path.offers or []
        yield from segment.sales.emails
    if funnel.winback:
        yield from funnel.winback.emails


def _languages(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    return check_languages(funnel, marks, all_emails(funnel))


def _suggest(name: str, known: Iterable[str]) -> str:
    options = sorted(set(known))
    return did_you_mean(name, options, f"write one of: {', '.join(options)}" if options
                        else "define it first")


def _duplicates(items: Iterable[m.Node], label: str, marks: Marks) -> Iterator[SequenceError]:
    first: dict[str, m.Node] = {}
    for item in items:
        ident = getattr(item, "id", None)
        if not isinstance(ident, str):
            continue
        if ident in first:
            line = marks.at((*first[ident]._where, "id")).line
            yield marks.error((*item._where, "id"), f"duplicate {label} id '{ident}' "
                              f"(first used at line {line})", "give each one its own id")
        else:
            first[ident] = item


def _unique_ids(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    yield from _duplicates(all_emails(funnel), "email", marks)
    yield from _duplicates(funnel.magnets, "magnet", marks)
    yield from _duplicates(funnel.segments, "segment", marks)
    if funnel.survey:
        yield from _duplicates(funnel.survey.questions, "question", marks)
        for question in funnel.survey.questions:
            yield from _duplicates(question.answers, "answer", marks)


def _signup(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    signup = funnel.signup
    magnets = [g.id for g in funnel.magnets]
    if signup.default_magnet is not None and signup.default_magnet not in magnets:
        yield marks.error((*signup._where, "default_magnet"),
                          f"no magnet '{signup.default_magnet}'", _suggest(signup.default_magnet, magnets))
    if signup.double_opt_in and signup.confirmation is None:
        yield marks.error(signup._where, "double opt-in is on but there is no confirmation email",
                          "add 'confirmation:' with id, subject and template, "
                          "or write 'double_opt_in: false'")


def _survey(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    survey = funnel.survey
    if survey is None:
        return
    segments = [s.id for s in funnel.segments]

    def segment_ref(where: tuple[str | int, ...], name: str) -> Iterator[SequenceError]:
        if name not in segments:
            yield marks.error(where, f"no segment '{name}'", _suggest(name, segments))

    yield from segment_ref((*survey._where, "default_segment"), survey.default_segment)
    answers = {q.id: [a.id for a in q.answers] for q in survey.questions}
    used: set[tuple[str, str]] = set()
    for rule in survey.rules:
        yield from segment_ref((*rule._where, "segment"), rule.segment)
        for question, accepted in rule.when.items():
            where = (*rule._where, "when", question)
            if question not in answers:
                yield marks.error(where, f"no question '{question}' in the survey",
                                  _suggest(question, answers), key=True)
                continue
            for answer in [accepted] if isinstance(accepted, str) else accepted:
                used.add((question, answer))
                if answer not in answers[question]:
                    yield marks.error(where, f"question '{question}' has no answer '{answer}'",
                                      _suggest(answer, answers[question]))
    for asked in survey.questions:
        for choice in asked.answers:
            if choice.segment is not None:
                yield from segment_ref((*choice._where, "segment"), choice.segment)
            elif (asked.id, choice.id) not in used:
                yield marks.error(choice._where, f"answer '{choice.id}' of question "
                                  f"'{asked.id}' leads to no segment",
                                  f"add 'segment: <id>' to it (one of: {', '.join(segments)}), "
                                  "or name it in a rule")


def _reach(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    survey = funnel.survey
    if survey is None:
        for segment in funnel.segments[1:]:
            yield marks.error((*segment._where, "id"), f"segment '{segment.id}' is unreachable: "
                              "without a survey every subscriber goes to the first segment",
                              "add a survey whose answers lead to it, or remove the segment")
        return
    reached = {survey.default_segment}
    reached.update(r.segment for r in survey.rules)
    reached.update(a.segment for q in survey.questions for a in q.answers if a.segment)
    for segment in funnel.segments:
        if segment.id not in reached:
            yield marks.error((*segment._where, "id"), f"segment '{segment.id}' is unreachable: "
                              "no answer, rule or default_segment leads to it",
                              f"add 'segment: {segment.id}' to a survey answer, or remove it")


def _paths(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    ratio = funnel.defaults.ratio
    for segment in funnel.segments:
        for name in ("nurture", "customer"):
            path: m.Path = getattr(segment, name)
            yield from _marketing_path(path, f"{name} path of segment '{segment.id}'", ratio, marks)
        yield from _sales_path(segment, marks)


def _marketing_path(path: m.Path, label: str, ratio: Ratio, marks: Marks) -> Iterator[SequenceError]:
    pooled = path.education is not None or path.offers is not None
    if path.emails is not None and pooled:
        yield marks.error(path._where, f"{label} has both 'emails' and pools",
                          "write either 'emails:' (in order, each with a role) or "
                          "'education:' and 'offers:' pools, not both")
        return
    if path.emails is None and not pooled:
        yield marks.error(path._where, f"{label} has no emails",
                          "add 'emails:' (in order, each with a role), or 'education:' and "
                          "'offers:' pools")
        return
    for email in path.emails or []:
        if email.role is None:
            yield marks.error(email._where, f"email '{email.id}' has no role",
                              "add 'role: education' or 'role: sale'")
    for pool, role in ((path.education or [], "education"), (path.offers or [], "sale")):
        for email in pool:
            if email.role not in (None, role):
                yield marks.error((*email._where, "role"), f"email '{email.id}' is in the "
                                  f"{'offers' if role == 'sale' else 'education'} pool but has "
                                  f"role '{email.role}'", f"remove 'role:' or write 'role: {role}'")
    for email in [*(path.emails or []), *(path.education or []), *(path.offers or [])]:
        if email.last_chance:
            yield marks.error((*email._where, "last_chance"), f"email '{email.id}' is marked "
                              "last_chance outside a sales path",
                              "remove 'last_chance: true'; it belongs on a sales path's final offer")
    if pooled:
        offers, education = len(path.offers or []), len(path.education or [])
        needed = ratio.education * -(-offers // ratio.sale)
        if education < needed:
            yield marks.error(path._where, f"{label} has {_count(offers, 'offer')} but only "
                              f"{_count(education, 'education email')}; at {ratio} that needs "
                              f"{needed}", f"add {_count(needed - education, 'education email')}"
                              " or remove offers")
            return
    if any(e.role is None for e in path.emails or []):
        return
    yield from _ratio(path, label, ratio, marks)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ratio(path: m.Path, label: str, ratio: Ratio, marks: Marks) -> Iterator[SequenceError]:
    emails = path_emails(path, ratio)
    roles = [email_role(e, path) for e in emails]
    if roles and roles[0] is Role.SALE:
        first = (*emails[0]._where, "role") if path.emails is not None else emails[0]._where
        yield marks.error(first, f"{label} opens with a sale "
                          f"('{emails[0].id}')", "start the path with an education email")
    size = ratio.window
    for i, role in enumerate(roles):
        if role is not Role.SALE or i == 0:
            continue
        start = max(0, i - size + 1)
        sales = sum(1 for r in roles[start : i + 1] if r is Role.SALE)
        if sales > ratio.sale:
            email = emails[i]
            yield marks.error(
                (*email._where, "role") if path.emails is not None else email._where,
                f"{label} breaks the {ratio} rule: emails '{emails[start].id}' to '{email.id}' "
                f"hold {sales} sales in {i - start + 1} in a row",
                f"at most {ratio.sale} of any {size} emails in a row may be a sale; move "
                f"'{email.id}' later or add education emails before it")


def _sales_path(segment: m.Segment, marks: Marks) -> Iterator[SequenceError]:
    sales = segment.sales
    label = f"sales path of segment '{segment.id}'"
    if sales.exit_on is None:
        yield marks.error(sales._where, f"{label} has no exit on purchase",
                          "add 'exit_on: purchase' so that a purchase ends it at once")
    elif not _valid_exit(sales.exit_on):
        yield marks.error((*sales._where, "exit_on"), f"{label} cannot exit on {sales.exit_on!r}",
                          "write 'exit_on: purchase', or 'exit_on: {purchase: [product-id, ...]}'")
    elif exit_products(sales.exit_on) == frozenset():
        yield marks.error((*sales._where, "exit_on"), f"{label} lists no products to exit on",
                          "name at least one product, or write 'exit_on: purchase'")
    final = sales.emails[-1]
    if not final.last_chance:
        yield marks.error(final._where, f"{label} does not end with a last-chance email "
                          f"('{final.id}' is last)",
                          "add 'last_chance: true' to the final offer (the discount, the price rise)")
    for email in sales.emails[:-1]:
        if email.last_chance:
            yield marks.error((*email._where, "last_chance"), f"email '{email.id}' is marked "
                              "last_chance but is not the final email of the sales path",
                              "move it to the end of the path, or remove 'last_chance: true'")


def _valid_exit(exit_on: object) -> bool:
    if exit_on == "purchase":
        return True
    if isinstance(exit_on, dict) and set(exit_on) == {"purchase"}:
        listed = exit_on["purchase"]
        return isinstance(listed, str) or (
            isinstance(listed, list) and all(isinstance(p, str) for p in listed))
    return False


def marketing_emails(funnel: m.Funnel) -> Iterator[m.Email]:
    """The emails of the funnel's paths and win-back, as written: those that may have variants."""
    for email in all_emails(funnel):
        if isinstance(email, m.Email):
            yield email


def _experiments(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    for email in marketing_emails(funnel):
        yield from check_experiment(email, f"email '{email.id}'", marks, broadcast=False)


def _products(funnel: m.Funnel, marks: Marks) -> Iterator[SequenceError]:
    """`products:` names segments that exist, and products that some sales path exits on."""
    segments = [s.id for s in funnel.segments]
    exits = [exit_products(s.sales.exit_on) for s in funnel.segments]
    listed = {p for found in exits if found for p in found}
    any_purchase = any(found is None for found in exits)
    for product, segment in funnel.products.items():
        where = (*funnel._where, "products", product)
        if segment not in segments:
            yield marks.error(where, f"no segment '{segment}' for product '{product}' in products",
                              _suggest(segment, segments))
        elif not any_purchase and product not in listed:
            # Every sales path exits on listed products only: a purchase of this one makes
            # nobody a customer, so its entry here could never take effect.
            yield marks.error(where, f"product '{product}' in products ends no sales path",
                              did_you_mean(product, sorted(listed), "add it to a sales path's "
                                           "'exit_on: {purchase: [...]}', or remove it here"),
                              key=True)
