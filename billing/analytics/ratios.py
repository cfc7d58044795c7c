"""The one rounding rule for rates and amounts derived by division.

Rates (churn, growth, recovery...) are ``Decimal`` fractions (0.0525 is 5.25 %) rounded
half-even to four decimal places, so to a hundredth of a percent. Amounts derived by
division (ARPA, LTV, averages of amounts) are whole minor units, rounded half-even.
Each is computed exactly (``Fraction``) and rounded once; a division by zero gives
``None``, never 0 or infinity.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from billing.rounding import RoundingMode, round_fraction

RATE_PLACES = Decimal("0.0001")


def rate_of(exact: Fraction) -> Decimal:
    """An exact rational as a rate with four decimals, rounded half-even once."""
    # Scale to whole ten-thousandths with the integer rounding of billing.rounding, so
    # no Decimal context precision can round earlier.
    return (Decimal(round_fraction(exact * 10_000, RoundingMode.HALF_EVEN)) / 10_000).quantize(
        RATE_PLACES, rounding=ROUND_HALF_EVEN
    )


def ratio(numerator: int | Fraction, denominator: int | Fraction) -> Decimal | None:
    """``numerator / denominator`` as a rate, or ``None`` when the denominator is 0."""
    if denominator == 0:
        return None
    return rate_of(Fraction(numerator) / Fraction(denominator))


def per(amount: int | Fraction, count: int | Fraction) -> int | None:
    """An amount divided by a count, in whole minor units, or ``None`` for a count of 0."""
    if count == 0:
        return None
    return round_fraction(Fraction(amount) / Fraction(count), RoundingMode.HALF_EVEN)
