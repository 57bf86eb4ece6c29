"""Numbers and prices in templates, per locale (engine/mail/numbers.py), through the one environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mail.numbers import format_money, format_number, format_share
from engine.mail.render import make_environment

NBSP, NNBSP = "\xa0", "\u202f"


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "€12.00"),
        ("fr", f"12,00{NBSP}€"),
        ("de", f"12,00{NBSP}€"),
        ("hu", f"12,00{NBSP}EUR"),  # CLDR: Hungarian writes the code, not the sign
        ("xx", "€12.00"),  # unknown: English
    ],
)
def test_money_is_written_as_the_locale_writes_prices(locale: str, expected: str) -> None:
    assert format_money("12", "EUR", locale) == expected


def test_forints_and_numbers_follow_the_locale() -> None:
    assert format_money(12000, "HUF", "hu") == f"12{NBSP}000{NBSP}Ft"
    assert format_number(1234.5, "en") == "1,234.5"
    assert format_number(1234.5, "hu") == f"1{NBSP}234,5"
    assert format_number("3", "de", digits=2) == "3,00"
    assert format_share(0.2, "en") == "20%"
    assert format_share("0.2", "de") == f"20{NBSP}%"


def test_a_wrong_amount_or_currency_says_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"not '\$49'; in vars write the amount without its currency"):
        format_money("$49", "USD", "en")
    with pytest.raises(ValueError, match="'EURO' is not a currency code; write one like EUR"):
        format_money(1, "EURO", "en")
    with pytest.raises(ValueError, match="needs a number"):
        format_number(True, "en")


def test_the_filters_use_the_emails_locale(tmp_path: Path) -> None:
    env = make_environment(tmp_path)
    template = env.from_string('{{ price | money("EUR") }} {{ n | number }} {{ s | percent }}')
    assert template.render(price=12, n=1234.5, s=0.25, locale="fr") == f"12,00{NBSP}€ 1{NNBSP}234,5 25{NBSP}%"
    assert template.render(price=12, n=1234.5, s=0.25) == "€12.00 1,234.5 25%"  # no locale: English
