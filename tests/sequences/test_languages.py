"""Which language a locale reads, and a browser's Accept-Language at signup (sequences/languages.py)."""

from __future__ import annotations

import pytest

from engine.sequences.languages import accepted, choose, from_browser, is_tag, match, writing_locale

LANGUAGES = ("en", "hu")


@pytest.mark.parametrize(
    ("locale", "languages", "expected"),
    [
        ("hu", LANGUAGES, "hu"),
        ("hu-HU", LANGUAGES, "hu"),  # the primary language
        ("HU_hu", LANGUAGES, "hu"),  # case and '_' do not matter
        ("pt-BR", ("en", "pt"), "pt"),
        ("pt-BR", ("en", "pt", "pt-BR"), "pt-BR"),  # the exact tag first
        ("pt", ("en", "pt-BR"), "pt-BR"),  # a funnel written in pt-BR serves plain pt
        ("de", LANGUAGES, None),
        ("xx", LANGUAGES, None),
        ("", LANGUAGES, None),
        ("hu", (), None),
    ],
)
def test_a_locale_matches_its_exact_tag_then_its_primary_language(
    locale: str, languages: tuple[str, ...], expected: str | None
) -> None:
    assert match(locale, languages) == expected


def test_an_unknown_locale_gets_the_default_and_a_funnel_without_languages_none() -> None:
    assert choose("de", LANGUAGES) == "en"
    assert choose(None, LANGUAGES) == "en"
    assert choose("hu-HU", LANGUAGES) == "hu"
    assert choose("hu", ()) is None


def test_accept_language_is_ranked_by_quality_then_order() -> None:
    header = "de-DE;q=0.5, hu-HU,hu;q=0.9, en-US;q=0.8, *;q=0.1, fr;q=0, !!;q=1"
    assert accepted(header) == ["hu-HU", "hu", "en-US", "de-DE"]
    assert accepted("") == accepted(None) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("hu-HU,hu;q=0.9,en-US;q=0.8,en;q=0.7", "hu"),
        ("de-DE,de;q=0.9,en;q=0.8", "en"),  # the best of the funnel's languages the browser accepts
        ("de-DE,de;q=0.9", "de"),  # none of them: the first tag's primary language, for dates
        ("*", None),
        (None, None),
    ],
)
def test_a_browser_picks_the_best_of_the_funnels_languages(header: str | None, expected: str | None) -> None:
    assert from_browser(header, LANGUAGES) == expected


def test_dates_and_numbers_are_written_in_the_subscribers_locale_only_in_their_language() -> None:
    assert writing_locale("pt-BR", "pt") == "pt-BR"
    assert writing_locale("de", "en") == "en"  # a German reading the English default
    assert writing_locale("de", None) == "de"  # no languages declared: as before
    assert writing_locale("hu", "hu") == "hu"


@pytest.mark.parametrize("tag", ["en", "hu", "pt-BR", "en_GB", "zh-Hant-TW", "de-CH-1901", "sgn-x-a"])
def test_one_language_tag_rule_takes_what_forms_csv_and_commands_take(tag: str) -> None:
    assert is_tag(tag)


@pytest.mark.parametrize("tag", ["", "e", "english", "hu HU", "en\n", "hu-", "<script>", "en-GB-toolong99"])
def test_one_language_tag_rule_refuses_what_is_not_a_tag(tag: str) -> None:
    assert not is_tag(tag)
