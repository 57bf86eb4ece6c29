"""Which of a funnel's languages a subscriber reads, from their locale or a browser's Accept-Language.

A funnel declares its languages (`languages: [en, hu]`, the first the default); a subscriber
has a locale (`hu`, `pt-BR`, `en_GB`). The language chosen is the exact tag, else the
primary language (`pt-BR` reads `pt`), else the funnel's default: a Brazilian gets the
Portuguese emails, a German on an English and Hungarian funnel the English ones. Pure
text work, no Babel: the language layer must not depend on mail's formatting data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A language tag as forms and CSVs accept it: en, hu, pt-BR, zh-Hant-TW, en_GB.
# A language tag as the engine takes one (a form, a CSV, the API, --locale, a sequence file):
# a 2-3 letter language, then subtags after '-' or '_' ('pt-BR', 'en_GB', 'zh-Hant-TW').
TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def is_tag(text: str) -> bool:
    """Whether `text` is a whole language tag (TAG)."""
    return TAG.fullmatch(text) is not None
# Accept-Language lists at most this many entries that count: a browser sends 2 to 6.
_MAX_RANGES = 20


def canonical(tag: str) -> str:
    """`tag` as the engine compares it: '-' between subtags, the language lowercase (en_gb -> en-gb)."""
    return tag.strip().replace("_", "-").lower()


def primary(tag: str) -> str:
    """The language of a tag, without region or script: 'pt-BR' -> 'pt'."""
    return canonical(tag).split("-", 1)[0]


def match(locale: str | None, languages: Sequence[str]) -> str | None:
    """The language of `languages` that `locale` reads: the exact tag, else its primary language
    (`pt-BR` -> `pt`), else None (the caller falls back to the default, `languages[0]`)."""
    if not locale or not languages:
        return None
    wanted = canonical(locale)
    by_tag = {canonical(lang): lang for lang in languages}
    if wanted in by_tag:
        return by_tag[wanted]
    base = primary(wanted)
    if base in by_tag:
        return by_tag[base]
    # A funnel written in 'pt-BR' still serves a subscriber whose locale is plain 'pt'.
    return next((lang for lang in languages if primary(lang) == base), None)


def choose(locale: str | None, languages: Sequence[str]) -> str | None:
    """The language a subscriber with `locale` gets: matched, else the funnel's default; None
    when the funnel declares no languages (its one set of templates serves everyone)."""
    if not languages:
        return None
    return match(locale, languages) or languages[0]


def accepted(header: str | None) -> list[str]:
    """The tags of an Accept-Language header, most wanted first ('*' and q=0 left out).

    'hu-HU,hu;q=0.9,en-US;q=0.8,en;q=0.7' -> ['hu-HU', 'hu', 'en-US', 'en']. Ties keep the
    header's order, as RFC 9110 leaves them to the server.
    """
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:_MAX_RANGES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or not is_tag(tag):
            continue
        quality = 1.0
        found = re.search(r"q\s*=\s*([0-9.]+)", params)
        if found:
            try:
                quality = float(found.group(1))
            except ValueError:
                continue
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def from_browser(header: str | None, languages: Sequence[str]) -> str | None:
    """A new subscriber's locale from their browser's Accept-Language: the best of the funnel's
    `languages` it accepts, else the first tag's primary language (kept so that dates and
    numbers are written their way); None when the header names no usable language."""
    tags = accepted(header)
    for tag in tags:
        found = match(tag, languages)
        if found is not None:
            return found
    return primary(tags[0]) if tags else None


def writing_locale(locale: str, language: str | None) -> str:
    """The locale an email's dates and numbers are written in: the subscriber's own when the
    email is in their language (a `pt-BR` reader of the `pt` emails gets Brazilian dates) or the
    funnel declares no languages; else the email's language (a German reading the English
    default gets English dates in the English text)."""
    if language is None or not locale or primary(locale) == primary(language):
        return locale or language or "en"
    return language
