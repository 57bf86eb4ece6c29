"""First names: the one given wins; a guess from the full name only where it cannot be the family name."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mail.context import PreviewLinks, Subscriber, template_context
from engine.mail.names import first_name
from engine.mail.render import Renderer
from engine.project.folder import Project

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Project(ROOT)
PLAN = PROJECT.plan("first-marathon")
RENDERER = Renderer(PROJECT.templates_dir)
# A shipped nurture email: "Hi {{ subscriber.first_name or "there" }},"
# (templates/marathon/a-course-intro.html).
EMAIL = next(e for e in PLAN.emails() if e.template == "marathon/a-course-intro.html")


def greeting(subscriber: Subscriber) -> str:
    context = template_context(PLAN, EMAIL, subscriber, PreviewLinks())
    text = RENDERER.render(EMAIL, context, key=(PLAN.funnel, EMAIL.id, None, EMAIL.segment)).text
    return next(line for line in text.splitlines() if line.startswith("Hi "))


@pytest.mark.parametrize(("name", "locale", "given", "greeted"), [
    ("Kiss Dóra", "hu", None, "Hi there,"),  # family name first: never "Hi Kiss,"
    ("Kiss Dóra", "hu-HU", "Dóra", "Hi Dóra,"),
    ("Kiss Dóra", "hu", "  Dóra ", "Hi Dóra,"),  # as given, tidied
    ("Ann Lee", "en", None, "Hi there,"),  # two words are never split (Kiss Dóra looks the same)
    ("Kiss Dóra", "en", None, "Hi there,"),  # a Hungarian list imported without locales
    ("Ann Lee", "en", "Annie", "Hi Annie,"),
    ("Ann", "en", None, "Hi Ann,"),  # one word: what the person wants to be called
    ("", "en", None, "Hi there,"),
    ("", "hu", "Dóra", "Hi Dóra,"),
])
def test_the_greeting_uses_the_given_first_name_or_a_safe_guess(
        name: str, locale: str, given: str | None, greeted: str) -> None:
    assert greeting(Subscriber("a@example.com", name, locale=locale, given_first_name=given)) == greeted


@pytest.mark.parametrize("locale", ["hu", "ja", "ko", "zh-Hant-TW", "vi_VN", "km", "mn", "my"])
def test_no_guess_in_a_family_name_first_locale(locale: str) -> None:
    assert first_name("Kiss Dóra", locale) == ""
    assert first_name("Dóra", locale) == ""  # one word may be the family name too


def test_no_guess_for_a_name_in_chinese_japanese_or_korean_script_whatever_the_locale() -> None:
    assert first_name("山田 太郎", "en") == first_name("김민준", "en") == first_name("王 芳", "de") == ""


@pytest.mark.parametrize(("name", "guessed"), [
    ("Ann", "Ann"),
    ("  Ann  ", "Ann"),
    ("Ann Lee", ""),  # or Kiss Dóra: the order cannot be told
    ("Mary Ann Lee", ""),
    ("A. Lee", ""),
    ("J Lee", ""),
    ("Dr Lee", ""),
    ("Mrs. Lee", ""),
    ("Lee, Ann", "Ann"),  # "Family, Given"
    ("Lee, Ann Mary", ""),
    (", Ann", ""),
])
def test_a_guess_takes_only_a_one_word_name_or_family_comma_given(name: str, guessed: str) -> None:
    assert first_name(name, "en") == guessed


def test_the_last_name_is_as_given_and_never_guessed() -> None:
    context = template_context(PLAN, EMAIL, Subscriber("a@example.com", "Ann"), PreviewLinks())
    assert (context["subscriber"]["first_name"], context["subscriber"]["last_name"]) == ("Ann", "")
    given = Subscriber("a@example.com", "Kiss Dóra", "hu", given_first_name="Dóra", given_last_name=" Kiss ")
    context = template_context(PLAN, EMAIL, given, PreviewLinks())
    assert (context["subscriber"]["first_name"], context["subscriber"]["last_name"]) == ("Dóra", "Kiss")


def test_preview_data_takes_a_first_name() -> None:
    from click.testing import CliRunner

    from engine.cli import main

    data = '{"name": "Kiss Dóra", "locale": "hu", "first_name": "Dóra", "last_name": "Kiss"}'
    given = CliRunner().invoke(main, ["--project", str(ROOT), "preview", "first-marathon", EMAIL.id,
                                      "--data", data])
    guessed = CliRunner().invoke(main, ["--project", str(ROOT), "preview", "first-marathon", EMAIL.id,
                                        "--data", '{"name": "Kiss Dóra", "locale": "hu"}'])
    assert given.exit_code == guessed.exit_code == 0, given.output
    assert "\nHi Dóra,\n" in given.stdout and "\nHi there,\n" in guessed.stdout
