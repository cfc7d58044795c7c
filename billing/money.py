"""Money as integers in a currency's minor unit, driven by the ISO 4217 exponent.

JPY has no minor unit (exponent 0), USD has cents (2), KWD has fils (3). Amounts are
always ``int``; ``Decimal`` appears only inside a computation, and rounding happens
once, at the last step, half-even unless a caller asks otherwise.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

# ISO 4217 currencies whose exponent is not 2. Every other active code in
# KNOWN_CURRENCIES has two decimals.
_EXPONENT_NOT_TWO: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip

_TWO_DECIMALS = (  # noqa: SIM905 -- one readable block beats 130 quoted strings
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR "
    "MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR "
    "SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD UZS VES WST XCD YER ZAR ZMW ZWG"
).split()

CURRENCY_EXPONENTS: dict[str, int] = {code: 2 for code in _TWO_DECIMALS} | _EXPONENT_NOT_TWO
KNOWN_CURRENCIES = frozenset(CURRENCY_EXPONENTS)


class UnknownCurrencyError(ValueError):
    """Raised for a code that is not an ISO 4217 currency we know."""


def normalize_currency(code: str) -> str:
    """Return the upper-case ISO 4217 code, or raise ``UnknownCurrencyError``."""
    upper = code.strip().upper()
    if upper not in CURRENCY_EXPONENTS:
        raise UnknownCurrencyError(f"unknown currency {code!r}: use an ISO 4217 code such as JPY")
    return upper


def exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit (JPY 0, USD 2, KWD 3)."""
    return CURRENCY_EXPONENTS[normalize_currency(currency)]


def to_minor(major: Decimal | int | str, currency: str) -> int:
    """Convert an amount in major units to minor units, rounding half-even once.

    Floats are refused: ``2.675`` is really 2.67499999... in binary, so the rounding
    would silently depend on the representation. Pass a string or a Decimal.
    """
    if isinstance(major, (float, bool)) or not isinstance(major, (Decimal, int, str)):
        raise TypeError(
            f"amounts in major units are str, int or Decimal, not {type(major).__name__}"
        )
    places = exponent(currency)
    try:
        value = Decimal(major)
    except InvalidOperation:
        raise ValueError(
            f"{major!r} is not a number (use a dot for decimals, e.g. 12.50)"
        ) from None
    if not value.is_finite():
        raise ValueError(f"{major!r} is not a finite amount")
    # Enough precision that scaling never rounds: the only rounding is the last step.
    with localcontext() as context:
        context.prec = max(28, len(value.as_tuple().digits) + places + 2)
        scaled = value.scaleb(places)
        return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def to_major(amount: int, currency: str) -> Decimal:
    """The exact major-unit value of an integer minor-unit amount."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amounts are integers in minor units, got {type(amount).__name__}")
    with localcontext() as context:
        context.prec = max(28, len(str(abs(amount))) + 2)
        return Decimal(amount).scaleb(-exponent(currency))


def format_amount(amount: int, currency: str, *, locale: str = "en") -> str:
    """Render an amount for people: ``¥1,000`` / ``1,000円`` / ``$12.50``.

    The number of decimals always equals the currency's exponent, so JPY never shows
    ``.00`` and USD always shows two digits.
    """
    code = normalize_currency(currency)
    exp = CURRENCY_EXPONENTS[code]
    major = to_major(amount, code)
    sign = "-" if major < 0 else ""
    digits = f"{abs(major):,.{exp}f}"
    if code == "JPY":
        return f"{sign}{digits}円" if locale.startswith("ja") else f"{sign}¥{digits}"
    symbol = _SYMBOLS.get(code)
    if symbol:
        return f"{sign}{symbol}{digits}"
    return f"{sign}{digits} {code}"


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "CN¥", "KRW": "₩", "INR": "₹"}


# Compact amounts, as a chart's axis or a headline shows them: Japanese groups digits by
# 10,000 (万) and 100,000,000 (億); English by thousands (K, M, B).
_JA_UNITS = ((10**8, "億"), (10**4, "万"))
_EN_UNITS = ((10**9, "B"), (10**6, "M"), (10**3, "K"))


def _short(value: Decimal) -> str:
    """One decimal at most, none when it is 0: 1.2, 12, 120."""
    text = f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN):f}"
    return text.removesuffix(".0")


def format_compact(amount: int, currency: str, *, locale: str = "en") -> str:
    """An amount rounded for reading at a glance: ``120万円`` / ``1.2億円`` in Japanese
    yen, ``¥1.2M`` / ``$12.5K`` otherwise; below the first unit it is ``format_amount``'s
    (``3,980円``, ``$12.50``), exact."""
    code = normalize_currency(currency)
    major = to_major(amount, code)
    japanese_yen = code == "JPY" and locale.startswith("ja")
    sign = "-" if major < 0 else ""
    for size, unit in _JA_UNITS if japanese_yen else _EN_UNITS:
        if abs(major) >= size:
            number = _short(abs(major) / size)
            if japanese_yen:
                return f"{sign}{number}{unit}円"
            sample = format_amount(0, code, locale=locale)  # where the symbol goes
            digits = f"{0:.{CURRENCY_EXPONENTS[code]}f}"
            return sign + sample.replace(digits, f"{number}{unit}", 1)
    return format_amount(amount, code, locale=locale)
