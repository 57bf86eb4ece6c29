"""Numbers and prices in templates, written the way the subscriber's locale writes them.

`{{ price | money("EUR") }}` is "€12.00" in en and "12,00 €" in hu and fr; `{{ 1234.5 | number }}`
is "1,234.5" in en and "1 234,5" in hu. Babel's CLDR data knows each locale's separators,
symbols and where the symbol goes. Imported with dates.py as the engine's only Babel users.
The locale is the email's `locale` (engine/mail/context.py): the subscriber's, or the
language of the email when it is not theirs.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
)
from jinja2 import pass_context
from jinja2.runtime import Context

from engine.mail.dates import FALLBACK, locale_of

__all__ = ["FILTERS", "format_money", "format_number"]

# A name the template may use: the locale every filter here writes in.
NAME = "locale"


def _amount(value: Any, filter_name: str) -> Decimal:
    """`value` as an exact number: prices are not floats (0.1 + 0.2 is not 0.3)."""
    if isinstance(value, bool):
        raise ValueError(f"'{filter_name}' needs a number, not {value}")
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip().replace("_", ""))
        except InvalidOperation:
            pass
    raise ValueError(
        f"'{filter_name}' needs a number like 12 or 12.50, not {value!r}; in vars "
        "write the amount without its currency sign (price: 12.50) and let "
        f'{{{{ vars.price | money("EUR") }}}} add it'
    )


def format_number(value: Any, locale: str, digits: int | None = None) -> str:
    """`value` with the locale's separators; `digits` fixes the decimals shown (default: as given)."""
    amount = _amount(value, "number")
    if digits is not None:
        amount = round(amount, digits)
        pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        return str(format_decimal(amount, format=pattern, locale=locale_of(locale)))
    return str(format_decimal(amount, locale=locale_of(locale)))


def format_money(value: Any, currency: str, locale: str) -> str:
    """`value` in `currency` (an ISO 4217 code: EUR, USD, HUF) as the locale writes prices."""
    amount = _amount(value, "money")
    code = str(currency).strip().upper()
    if not _known_currency(code, locale):
        raise ValueError(f"'{currency}' is not a currency code; write one like EUR, USD, GBP or HUF")
    return str(format_currency(amount, code, locale=locale_of(locale)))


@lru_cache(maxsize=256)
def _known_currency(code: str, locale: str) -> bool:
    """Whether CLDR knows `code` in `locale` or in English (asked once per code and locale)."""
    return code in locale_of(locale).currencies or code in locale_of(FALLBACK).currencies


def format_share(value: Any, locale: str) -> str:
    """A share (0.2) as the locale writes a percentage: "20%" in en, "20%" in hu, "20 %" in de."""
    return str(format_percent(_amount(value, "percent"), locale=locale_of(locale)))


def _locale(context: Context) -> str:
    found = context.get(NAME)
    return found if isinstance(found, str) and found else FALLBACK


@pass_context
def _number(context: Context, value: Any, digits: int | None = None) -> str:
    return format_number(value, _locale(context), digits)


@pass_context
def _money(context: Context, value: Any, currency: str) -> str:
    return format_money(value, currency, _locale(context))


@pass_context
def _percent(context: Context, value: Any) -> str:
    return format_share(value, _locale(context))


FILTERS = {"number": _number, "money": _money, "percent": _percent}
