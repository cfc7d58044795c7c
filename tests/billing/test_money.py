"""Money in integer minor units, driven by the ISO 4217 exponent."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import (
    CURRENCY_EXPONENTS,
    KNOWN_CURRENCIES,
    UnknownCurrencyError,
    exponent,
    format_amount,
    normalize_currency,
    to_major,
    to_minor,
)

currencies = st.sampled_from(sorted(KNOWN_CURRENCIES))
# Far beyond any real invoice (a quintillion minor units) and within Decimal's
# default 28-digit precision, which the conversions compute in.
amounts = st.integers(min_value=-(10**18), max_value=10**18)


# --- exponents ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("VND", 0),
        ("CLP", 0),
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("CNY", 2),
        ("KWD", 3),
        ("BHD", 3),
        ("TND", 3),
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_iso_4217_exponents(currency: str, expected: int) -> None:
    assert exponent(currency) == expected


def test_every_known_currency_is_an_upper_case_code_with_a_sane_exponent() -> None:
    assert set(CURRENCY_EXPONENTS) == KNOWN_CURRENCIES
    for code, exp in CURRENCY_EXPONENTS.items():
        assert re.fullmatch(r"[A-Z]{3}", code), code
        assert exp in (0, 2, 3, 4), code


# --- formatting ----------------------------------------------------------------------


def test_yen_has_no_decimal_point() -> None:
    assert format_amount(1000, "JPY") == "¥1,000"
    assert format_amount(1000, "JPY", locale="ja") == "1,000円"
    assert format_amount(1000, "JPY", locale="ja-JP") == "1,000円"
    assert "." not in format_amount(1000, "JPY")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1250, "USD", "$12.50"),
        (5, "USD", "$0.05"),
        (0, "USD", "$0.00"),
        (-1250, "USD", "-$12.50"),
        (123456789, "USD", "$1,234,567.89"),
        (1234, "KWD", "1.234 KWD"),
        (1, "KWD", "0.001 KWD"),
        (12345, "CLF", "1.2345 CLF"),
        (999, "EUR", "€9.99"),
        (-500, "JPY", "-¥500"),
    ],
)
def test_format_examples(amount: int, currency: str, expected: str) -> None:
    assert format_amount(amount, currency) == expected


@given(amounts)
def test_usd_always_has_exactly_two_decimals(amount: int) -> None:
    assert re.fullmatch(r"-?\$\d{1,3}(,\d{3})*\.\d{2}", format_amount(amount, "USD"))


@given(amounts)
def test_kwd_always_has_exactly_three_decimals(amount: int) -> None:
    assert re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{3} KWD", format_amount(amount, "KWD"))


@given(amounts, currencies)
def test_formatted_decimals_equal_the_exponent_and_the_value_survives(
    amount: int, currency: str
) -> None:
    text = format_amount(amount, currency)
    number = re.search(r"\d[\d,]*(\.\d+)?", text)
    assert number is not None, text
    decimals = number.group(1)
    assert (len(decimals) - 1 if decimals else 0) == exponent(currency), text
    value = Decimal(number.group(0).replace(",", ""))
    assert (-value if text.startswith("-") else value) == to_major(amount, currency)


# --- conversions ---------------------------------------------------------------------


@given(amounts, currencies)
def test_minor_major_round_trip(amount: int, currency: str) -> None:
    major = to_major(amount, currency)
    assert isinstance(major, Decimal)
    assert to_minor(major, currency) == amount
    assert to_minor(str(major), currency) == amount
    assert major == Decimal(amount) / 10 ** exponent(currency)


@given(amounts, currencies)
def test_to_minor_of_a_whole_major_amount(whole: int, currency: str) -> None:
    assert to_minor(whole, currency) == whole * 10 ** exponent(currency)


@pytest.mark.parametrize(
    ("major", "currency", "expected"),
    [
        ("0.125", "USD", 12),
        ("0.135", "USD", 14),
        ("0.145", "USD", 14),
        ("-0.125", "USD", -12),
        ("-0.135", "USD", -14),
        ("12.345", "USD", 1234),
        ("0.5", "JPY", 0),
        ("1.5", "JPY", 2),
        ("2.5", "JPY", 2),
        ("0.0005", "KWD", 0),
        ("0.0015", "KWD", 2),
        ("0.00005", "CLF", 0),
        ("0.124999", "USD", 12),
        ("0.125001", "USD", 13),
        (Decimal("0.135"), "USD", 14),
        ("1e2", "USD", 10000),
    ],
)
def test_to_minor_rounds_half_even(major: str | Decimal, currency: str, expected: int) -> None:
    assert to_minor(major, currency) == expected


@given(st.integers(-(10**15), 10**15), currencies)
def test_to_minor_rounds_exact_halves_to_even(minor: int, currency: str) -> None:
    half = (Decimal(minor) + Decimal("0.5")).scaleb(-exponent(currency))
    result = to_minor(half, currency)
    assert result in (minor, minor + 1)
    assert result % 2 == 0


# --- currency codes -------------------------------------------------------------------


@pytest.mark.parametrize("code", ["XXX", "ABC", "US", "", "JPYY", "¥"])
def test_unknown_currency_is_refused_naming_the_code(code: str) -> None:
    for call in (
        lambda: exponent(code),
        lambda: normalize_currency(code),
        lambda: to_minor("1", code),
        lambda: to_major(1, code),
        lambda: format_amount(1, code),
    ):
        with pytest.raises(UnknownCurrencyError, match=re.escape(repr(code))):
            call()


def test_unknown_currency_error_is_a_value_error() -> None:
    assert issubclass(UnknownCurrencyError, ValueError)


@pytest.mark.parametrize("code", ["jpy", "Jpy", " usd ", "kwd"])
def test_lower_case_and_padded_codes_are_accepted(code: str) -> None:
    assert normalize_currency(code) == code.strip().upper()
    assert exponent(code) == exponent(code.strip().upper())


def test_lower_case_codes_convert_and_format() -> None:
    assert to_minor("12.50", "usd") == 1250
    assert to_major(1250, "usd") == Decimal("12.50")
    assert format_amount(1250, "usd") == "$12.50"
    assert format_amount(1000, "jpy") == "¥1,000"


# --- amounts are integers --------------------------------------------------------------


@pytest.mark.parametrize("amount", [12.5, 1.0, True, False, Decimal("12"), "1250", None])
def test_to_major_rejects_anything_but_int(amount: object) -> None:
    with pytest.raises(TypeError, match="integers"):
        to_major(amount, "USD")  # type: ignore[arg-type]


def test_format_amount_rejects_floats() -> None:
    with pytest.raises(TypeError):
        format_amount(12.5, "USD")  # type: ignore[arg-type]
