"""What templates call a subscriber: the first name given, or one taken from the full name where safe.

A wrong guess is worse than none: "Hi Kiss," to Kiss Dóra (Hungarian order, family name
first) reads as a mistake, while "Hi there," reads as nothing. So a first name is taken
from `name` only when

- no first name was given (a form's `first_name`, a CSV column, the API);
- the subscriber's language does not write the family name first (FAMILY_NAME_FIRST), and
  the name holds no Chinese, Japanese or Korean script (written family name first whatever
  the locale says);
- the name is one word (what someone types who wants to be called that);
- or it is written "Family, Given", with one word after the comma: that one.

Two words are never split: "Ann Lee" and "Kiss Dóra" look alike, and the locale cannot
tell them apart (an import without a locale column makes everyone `en`; a Hungarian
list imported so would greet every Dóra "Hi Kiss,"). Anything else gives an empty first
name, and templates write their fallback: `{{ subscriber.first_name or "there" }}`. A
form made by `funnel form` asks for `first_name`, and a CSV can carry a `first_name`
column, so the name is given, not guessed.
For a family-name-first locale the second word is not taken either: the locale says
which language the person reads, not in which order they typed their name into a form
(many Hungarians write "Dóra Kiss" on an English form).
"""

from __future__ import annotations

import unicodedata

from engine.sequences.languages import primary

# Languages (the first subtag of a locale) whose names are written family name first:
# Hungarian, Japanese, Korean, Chinese, Vietnamese, Khmer; Mongolian puts the patronymic
# first; Burmese names have no family name, so a word of one is no first name either.
FAMILY_NAME_FIRST = frozenset({"hu", "ja", "ko", "zh", "vi", "km", "mn", "my"})
_CJK_SCRIPTS = ("CJK", "HANGUL", "HIRAGANA", "KATAKANA")
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame"})


def tidy(name: str | None) -> str:
    """A name as given, on one line with single spaces; "" for none."""
    return " ".join(name.split()) if name else ""


def first_name(name: str, locale: str, given: str | None = None) -> str:
    """The first name templates use (see the module's docstring for when it is taken from `name`)."""
    if tidy(given):
        return tidy(given)
    # An ASCII name holds no CJK script: most names skip the look-up of every character's
    # Unicode name (~4 µs for a 16-character name, at every email).
    if primary(locale) in FAMILY_NAME_FIRST or (not name.isascii() and any(_cjk(c) for c in name)):
        return ""
    family, comma, rest = name.partition(",")
    words = rest.split() if comma else family.split()
    if comma:
        return words[0] if len(words) == 1 and family.strip() else ""
    if len(words) == 1 and not _initial_or_title(words[0]):
        return words[0]
    return ""


def _initial_or_title(word: str) -> bool:
    bare = word.rstrip(".").lower()
    return len(bare) <= 1 or bare in _TITLES


def _cjk(char: str) -> bool:
    return ord(char) >= 0x1100 and unicodedata.name(char, "").startswith(_CJK_SCRIPTS)
