"""`preview`, `send-test` and `simulate --locale` on the starter, written in English and Hungarian."""

from __future__ import annotations

import json
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

STARTER = Path(__file__).resolve().parents[2] / "engine" / "project" / "starter"
NBSP = "\xa0"


@pytest.fixture
def bakery(tmp_path: Path) -> Cli:
    shutil.copytree(STARTER, tmp_path / "bakery")
    return Cli(tmp_path / "bakery", f"sqlite:///{tmp_path / 'never.db'}")


def test_preview_renders_the_language_a_locale_gets_with_its_prices(bakery: Cli) -> None:
    hungarian = bakery("preview", "home-bakery", "b-last-chance", "--locale", "hu-HU")
    assert hungarian.exit_code == 0, hungarian.output
    assert "Language: hu (for locale hu-HU)\n" in hungarian.output
    # A subject is one line of plain spaces (render.py), the no-break space CLDR writes too.
    assert "Subject: Utolsó esély: Bread in a Weekend 39,00 EUR áron\n" in hungarian.output
    assert f"49,00{NBSP}EUR helyett" in hungarian.output
    assert "Szia Alex!" in hungarian.output and "Leiratkozás" in hungarian.output
    german = bakery("preview", "home-bakery", "b-last-chance", "--locale", "de")
    assert "Language: en (for locale de)\n" in german.output
    assert "Subject: Last chance: Bread in a Weekend for €39.00\n" in german.output  # English, English prices
    french = bakery("preview", "home-bakery", "b-last-chance", "--data", '{"locale": "fr"}')
    assert "Language: en (for locale fr)" in french.output  # --data's locale works as --locale does


def test_a_bad_locale_says_what_to_write(bakery: Cli) -> None:
    result = bakery("preview", "home-bakery", "guide", "--locale", "hu HU")
    assert result.exit_code == 2
    assert "'hu HU' is not a language tag; write one like en, hu or pt-BR" in result.output


def test_simulate_shows_the_subjects_in_the_locales_language(bakery: Cli) -> None:
    result = bakery(
        "simulate",
        "home-bakery",
        "--answer",
        "baked=never",
        "--start",
        "2026-03-02T09:00",
        "--locale",
        "hu",
        "--json",
    )
    assert result.exit_code == 0, result.output
    subjects = {row["step"]: row["subject"] for row in json.loads(result.output)}
    assert subjects["confirm"] == "Erősítsd meg a címedet, és küldjük a kovász-útmutatót"
    assert subjects["b-starter"] == "Első nap: a kovász etetése"
    english = bakery(
        "simulate", "home-bakery", "--answer", "baked=never", "--start", "2026-03-02T09:00", "--json"
    )
    assert {r["step"]: r["subject"] for r in json.loads(english.output)}["b-starter"] == (
        "Day one: feeding your starter"
    )


def test_send_test_sends_the_hungarian_version(bakery: Cli) -> None:
    result = bakery("send-test", "home-bakery", "guide", "--to", "me@example.com", "--locale", "hu")
    assert result.exit_code == 0, result.output
    (written,) = (bakery.project / "outbox").iterdir()
    message = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert message["Subject"] == "[test] Megérkezett a kovász-útmutatód"
    assert "Az első napot kezdd holnap," in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
