"""Tax rates, tax computed once per rate per invoice, and Japanese registration numbers.

**Once per rate per invoice.** Under Japan's qualified invoice system (適格請求書等
保存方式, since October 2023) consumption tax is computed once per tax rate per
invoice, on the sum of the invoice's amounts at that rate, and rounded once; it is
*not* the sum of per-line taxes. Three lines of 105 JPY at 10% give
``315 x 10% = 31.5 -> 31`` yen of tax (rounding down), not ``3 x (10.5 -> 10) = 30``.
``compute_taxes`` always works this way, which is also correct (and exact)
elsewhere.

**Exclusive and inclusive rates.** An exclusive rate adds ``base x p / 100`` on top
of the base. An inclusive rate's amounts already contain the tax, which is
extracted from the gross as ``gross x p / (100 + p)``, also once per rate on the sum
of the gross amounts. A line carries either any number of exclusive rates (each
applied to the line's amount: a state and a city tax) or exactly one inclusive
rate; stacking inclusive rates, or mixing the two kinds on one line, is refused
(``line_rate_error``), as Stripe does.

**Rounding.** Tax is the one amount whose rounding is configurable
(``billing.rounding.RoundingMode``): ``down`` (切り捨て, the default), ``half_up``
(四捨五入), ``half_even`` or ``up`` (切り上げ). The exact product is computed with
rationals and rounded once.

**Registration numbers** (適格請求書発行事業者登録番号) are ``"T"`` followed by 13
digits. For a corporation the 13 digits are its corporate number (法人番号), whose
first digit is a check digit over the other twelve, as defined by the Ministry of
Finance ordinance on corporate numbers (法人番号の指定等に関する省令, 第二条)::

    check digit = 9 - (sum(P_n x Q_n for n = 1..12) mod 9)

where ``P_n`` is the n-th digit of the 12-digit base number counted from the
*rightmost* digit (n = 1) and ``Q_n`` is 1 for odd n and 2 for even n. The
result is always 1..9, so a corporate number never starts with 0. The check
catches every single wrong digit except a 0 typed for a 9 or a 9 for a 0 (9 and
18 are both 0 mod 9), a known weakness of the rule. Worked example
from the rule's published explanations: base ``123456789012`` sums to 74,
``74 mod 9 = 2``, check digit ``9 - 2 = 7``, corporate number ``7123456789012``.

Sole proprietors and associations without a corporate number get "T + 13 digits"
that the National Tax Agency assigns per business, never a My Number and never the
same as any corporate number (国税庁 適格請求書発行事業者公表サイト「登録番号とは」).
The NTA does not publish a separate check rule for them; they are issued from the
same 13-digit numbering with its check digit, so this module applies the same rule
to every registration number. If a genuine number were ever refused, callers can
pass ``verify_check_digit=False`` to accept any "T" + 13 digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing.rounding import RoundingMode, parse_decimal, round_fraction


@dataclass(frozen=True)
class TaxRate:
    """A tax rate, e.g. ``TaxRate(id="jct10", name="消費税", percentage=Decimal(10))``.

    Attributes:
        id: A stable identifier lines refer to.
        name: The name printed on invoices (``"消費税"``, ``"VAT"``).
        percentage: The rate in percent, ``0 <= percentage <= 100``.
        inclusive: ``True`` if amounts already include the tax.
        jurisdiction: Where the tax applies (``"JP"``, ``"US-CA"``), for display and
            reporting.
    """

    id: str
    name: str
    percentage: Decimal
    inclusive: bool = False
    jurisdiction: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("a tax rate needs a non-empty id")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a tax rate needs a name")
        percentage = parse_decimal(self.percentage, what="percentage")
        if not 0 <= percentage <= 100:
            raise ValueError(f"a tax percentage is between 0 and 100, got {percentage}")
        object.__setattr__(self, "percentage", percentage)
        if not isinstance(self.inclusive, bool):
            raise TypeError("inclusive must be a bool")


def tax_amount(*, rate: TaxRate, amount: int, rounding: RoundingMode = RoundingMode.DOWN) -> int:
    """The tax of ``rate`` on ``amount``, rounded once.

    Args:
        rate: The tax rate.
        amount: For an exclusive rate, the amount before tax; for an inclusive
            rate, the amount including the tax. Minor units; may be negative (a
            credit), in which case the tax is its mirror image.
        rounding: The rounding mode, down (切り捨て) by default.

    Returns:
        ``amount x p / 100`` (exclusive) or ``amount x p / (100 + p)``
        (inclusive), rounded with ``rounding``.
    """
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("amounts are integers in minor units")
    percentage = Fraction(rate.percentage)
    divisor = 100 + percentage if rate.inclusive else Fraction(100)
    return round_fraction(amount * percentage / divisor, RoundingMode(rounding))


@dataclass(frozen=True)
class TaxableAmount:
    """An amount and the tax rates it carries (an invoice line, after discounts).

    Attributes:
        amount: Minor units; the gross amount if the rate is inclusive.
        tax_rate_ids: The ids of the rates that apply; empty for untaxed.
    """

    amount: int
    tax_rate_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RateTotal:
    """One rate's total on an invoice: what Japanese invoices print per rate.

    Attributes:
        rate: The tax rate.
        net_amount: The amounts at this rate, excluding this tax (税抜).
        tax: The tax, rounded once for the whole invoice.
        gross_amount: ``net_amount + tax`` (税込).
    """

    rate: TaxRate
    net_amount: int
    tax: int
    gross_amount: int


def line_rate_error(rates: Sequence[TaxRate]) -> str | None:
    """Why one line cannot carry ``rates`` together, or ``None`` if it can.

    A line carries any number of distinct exclusive rates, or one inclusive rate.
    """
    ids = [rate.id for rate in rates]
    if len(set(ids)) != len(ids):
        return f"a line lists the same tax rate twice: {ids}"
    inclusive = [rate.id for rate in rates if rate.inclusive]
    if inclusive and len(rates) > 1:
        return f"an inclusive tax rate ({inclusive[0]!r}) must be a line's only tax rate"
    return None


def compute_taxes(
    *,
    amounts: Sequence[TaxableAmount],
    rates: Sequence[TaxRate],
    rounding: RoundingMode = RoundingMode.DOWN,
) -> tuple[RateTotal, ...]:
    """Tax once per rate on the sum of the amounts carrying that rate.

    Args:
        amounts: The invoice's taxable amounts (lines after discounts).
        rates: Every rate the amounts may refer to; the result follows this order
            (so a Japanese invoice can list 10% before 8%).
        rounding: How each rate's tax is rounded, down (切り捨て) by default.

    Returns:
        One ``RateTotal`` per rate that at least one amount carries.

    Raises:
        ValueError: For an unknown rate id, duplicate rate ids, or a line whose
            rates cannot go together (``line_rate_error``).
    """
    by_id = {rate.id: rate for rate in rates}
    if len(by_id) != len(rates):
        raise ValueError("tax rate ids must be unique")
    sums: dict[str, int] = {}
    for item in amounts:
        unknown = [rate_id for rate_id in item.tax_rate_ids if rate_id not in by_id]
        if unknown:
            raise ValueError(f"unknown tax rate(s) {unknown}")
        reason = line_rate_error([by_id[rate_id] for rate_id in item.tax_rate_ids])
        if reason is not None:
            raise ValueError(reason)
        for rate_id in item.tax_rate_ids:
            sums[rate_id] = sums.get(rate_id, 0) + item.amount
    totals = []
    for rate in rates:
        if rate.id not in sums:
            continue
        base = sums[rate.id]
        tax = tax_amount(rate=rate, amount=base, rounding=rounding)
        net = base - tax if rate.inclusive else base
        totals.append(RateTotal(rate=rate, net_amount=net, tax=tax, gross_amount=net + tax))
    return tuple(totals)


# --- registration numbers (適格請求書発行事業者登録番号) ---------------------------

_REGISTRATION = re.compile(r"T([0-9]{13})")


def corporate_number_check_digit(base: str) -> int:
    """The check digit (検査用数字) of a 12-digit base number (基礎番号).

    Args:
        base: The 12 digits after the check digit (e.g. a 会社法人等番号).

    Returns:
        ``9 - (sum(P_n x Q_n) mod 9)``, with ``P_n`` the n-th digit from the right
        and ``Q_n`` 1 for odd n, 2 for even n: always 1..9.
    """
    if not re.fullmatch(r"[0-9]{12}", base):
        raise ValueError(f"a corporate number's base is 12 digits, got {base!r}")
    total = sum(int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(base), start=1))
    return 9 - total % 9


def is_corporate_number(number: str) -> bool:
    """Whether ``number`` is 13 digits whose first digit is the check digit."""
    if not isinstance(number, str) or not re.fullmatch(r"[0-9]{13}", number):
        return False
    return int(number[0]) == corporate_number_check_digit(number[1:])


def registration_number_error(value: str, *, verify_check_digit: bool = True) -> str | None:
    """Why ``value`` is not a registration number, or ``None`` if it is.

    Full-width characters, a lower-case ``t``, spaces and hyphens are tolerated
    (see ``normalize_registration_number``).

    Args:
        value: The number as typed (``"T7123456789012"``, ``"Ｔ７１２３…"``).
        verify_check_digit: Check the 13 digits' check digit (default).

    Returns:
        A sentence for the user, or ``None``.
    """
    if not isinstance(value, str):
        return "a registration number is text: T followed by 13 digits"
    compact = _compact(value)
    match = _REGISTRATION.fullmatch(compact)
    if match is None:
        return f"{value!r} is not T followed by 13 digits"
    if verify_check_digit and not is_corporate_number(match.group(1)):
        expected = corporate_number_check_digit(match.group(1)[1:])
        return f"{value!r} has a wrong check digit: the first of the 13 digits should be {expected}"
    return None


def normalize_registration_number(value: str, *, verify_check_digit: bool = True) -> str:
    """The canonical form ``"T"`` + 13 ASCII digits, or ``ValueError`` with the reason.

    NFKC-normalizes (full-width ``Ｔ１２…`` becomes ``T12…``), upper-cases, and drops
    spaces and hyphens (``T7-1234-5678-9012``).
    """
    reason = registration_number_error(value, verify_check_digit=verify_check_digit)
    if reason is not None:
        raise ValueError(reason)
    return _compact(value)


def _compact(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip().upper()
    return re.sub(r"[\s\-‐‑–—−ー]", "", text)
