"""The rules of a funnel's languages: valid tags, and every text a reader sees given in each one.

With `languages: [en, hu]` every subject, magnet title, survey question and answer label is
written once per language, `{en: "...", hu: "..."}`: a text left in one language would
greet a Hungarian reader in English. Without `languages:` a text is one string. The
templates of each language are checked by the project (engine/project/templates.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.errors import SequenceError, did_you_mean
from engine.sequences import model as m
from engine.sequences.languages import canonical, is_tag
from engine.sequences.loader import Marks, Path


def check_languages(
    funnel: m.Funnel, marks: Marks, emails: Iterable[m.TransactionalEmail | m.Email]
) -> Iterator[SequenceError]:
    """Every problem with the funnel's `languages:` and its texts (those of `emails`, every email
    of the funnel, included)."""
    languages = funnel.languages or []
    seen: dict[str, int] = {}
    for i, tag in enumerate(languages):
        where = (*funnel._where, "languages", i)
        if not is_tag(tag):
            yield marks.error(where, f"'{tag}' is not a language tag", "write one like en, hu, de or pt-BR")
        elif canonical(tag) in seen:
            yield marks.error(where, f"language '{tag}' is listed twice", "keep one of them")
        seen.setdefault(canonical(tag), i)
    if funnel.languages is not None and not languages:
        yield marks.error(
            (*funnel._where, "languages"),
            "'languages' is empty",
            "list the languages, the default first, like [en, hu], or remove it",
        )
    for node, key, text in _texts(funnel, emails):
        yield from _text(node, key, text, languages, marks)


def _texts(
    funnel: m.Funnel, emails: Iterable[m.TransactionalEmail | m.Email]
) -> Iterator[tuple[m.Node, str, m.Text]]:
    """Each text a subscriber reads, with the node and key it is written at."""
    for magnet in funnel.magnets:
        yield magnet, "title", magnet.title
    if funnel.survey:
        for question in funnel.survey.questions:
            yield question, "text", question.text
            for answer in question.answers:
                yield answer, "label", answer.label
    for email in emails:
        yield email, "subject", email.subject
        for variant in (email.variants or []) if isinstance(email, m.Email) else []:
            if variant.subject is not None:
                yield variant, "subject", variant.subject


def _text(
    node: m.Node, key: str, text: m.Text, languages: list[str], marks: Marks
) -> Iterator[SequenceError]:
    where: Path = (*node._where, key)
    ident = getattr(node, "id", None)
    noun = f"{key} of {node.noun} '{ident}'" if isinstance(ident, str) else key
    if not languages:
        if isinstance(text, dict):
            yield marks.error(
                where,
                f"the {noun} is given per language, but the funnel declares no languages",
                f"add 'languages: [{', '.join(text) or 'en'}]' under 'name:' (the "
                "default first), or write the text alone",
            )
        return
    if isinstance(text, str):
        example = ", ".join(f'{lang}: "..."' for lang in languages)
        yield marks.error(
            where,
            f"the {noun} is not translated: the funnel's languages are {', '.join(languages)}",
            f"write it once per language: {key}: {{{example}}}",
        )
        return
    for lang in text:
        if lang not in languages:
            yield marks.error(
                (*where, lang),
                f"'{lang}' is not one of the funnel's languages ({', '.join(languages)})",
                did_you_mean(lang, languages, f"add '{lang}' to 'languages:' or remove this text"),
                key=True,
            )
    for lang in languages:
        if lang not in text:
            yield marks.error(
                where,
                f"the {noun} has no '{lang}' text",
                f"add '{lang}: \"...\"' to it: the {noun} as '{lang}' readers read it",
            )
