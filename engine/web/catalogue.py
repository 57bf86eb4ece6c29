"""The words of the pages behind email links, in the reader's language: a small message catalogue.

The pages (engine/web/pages/*.html) are written in English and call `_("...")`; a language
here gives each sentence its own words, and a sentence it lacks stays English. A dict,
not gettext: a few dozen sentences, and adding a language is adding one mapping below
(docs/languages.md, "Pages"). Values put into a sentence are escaped; the sentence itself
is ours and may hold markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from markupsafe import Markup

from engine.sequences.languages import match

DEFAULT = "en"

# fmt: off
_HU: Mapping[str, str] = {
    # confirm.html
    "Thank you, your address is confirmed": "Köszönjük, a címedet megerősítetted",
    "“{title}” is on its way to {email}. It should arrive within a few minutes.":
        "Már küldjük: „{title}”, erre a címre: {email}. Néhány percen belül megérkezik.",
    "Please confirm your address": "Kérjük, erősítsd meg a címedet",
    "Someone asked for “{title}” to be sent to <strong>{email}</strong>. If that was you, press the button.":
        "Valaki ezt kérte: „{title}”, erre a címre: <strong>{email}</strong>. "
        "Ha te voltál, nyomd meg a gombot.",
    "Yes, confirm {email}": "Igen, megerősítem: {email}",
    "If it was not you, close this page: nothing will be sent.":
        "Ha nem te voltál, csak zárd be ezt az oldalt: nem küldünk semmit.",
    # answer.html
    "Thank you, your answer is saved": "Köszönjük, a válaszodat elmentettük",
    "What we send you next will follow from it. You can close this page.":
        "Amit ezután küldünk, ehhez igazodik. Ezt az oldalt bezárhatod.",
    "One more click to save your answer": "Még egy kattintás, és elmentjük a válaszodat",
    # unsubscribe.html
    "You are unsubscribed": "Leiratkoztál",
    "{email} will get no more marketing email from us.":
        "Erre a címre nem küldünk több marketinglevelet: {email}.",
    "{email} will get no more email from {funnel}.":
        "Nem küldünk több levelet ({funnel}) erre a címre: {email}.",
    "It takes effect at once. We are sorry to see you go.": "Azonnal érvényes. Sajnáljuk, hogy elmész.",
    "Unsubscribe {email}?": "Leiratkozol ezzel a címmel: {email}?",
    "Stop email from {funnel}": "Nem kérek több levelet ({funnel})",
    "Stop all our marketing email": "Semmilyen marketinglevelet nem kérek",
}
# fmt: on

CATALOGUE: Mapping[str, Mapping[str, str]] = {"hu": _HU}
LANGUAGES = (DEFAULT, *CATALOGUE)


def language_of(locale: str | None) -> str:
    """The catalogue's language for `locale`: exact tag, then primary language, else English."""
    return match(locale, LANGUAGES) or DEFAULT


def translator(language: str) -> Callable[..., Markup]:
    """`_(sentence, **values)`: the sentence in `language` (else as written), values escaped in."""
    words = CATALOGUE.get(language, {})

    def _(sentence: str, **values: object) -> Markup:
        return Markup(words.get(sentence, sentence)).format(**values)

    return _
