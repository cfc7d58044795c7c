"""Exact arithmetic for billing: parse decimals, round once, split without losing a yen.

Every computation in rating, discounts, tax, invoices and credit notes runs on exact
rationals (``fractions.Fraction``; a ``Decimal`` converts to one without loss) and
is rounded to whole minor units exactly once, at the last step:

- amounts (rated usage, discounts) round **half-even** (``RoundingMode.HALF_EVEN``),
  the rule of ``billing.money``;
- consumption tax rounds with a configurable mode, **down** (切り捨て) by default,
  because that is what most Japanese sellers print on a qualified invoice.

The modes are defined on the absolute value, so a negative amount (a credit) rounds
to the mirror image of the positive one: ``DOWN`` is toward zero, ``UP`` away from
zero, ``HALF_UP`` is 四捨五入 (halves away from zero), ``HALF_EVEN`` is banker's
rounding.

When one rounded amount has to be split into parts (a discount across tax-rate
groups, a credit note across rates, a rated total across tiers), ``allocate`` uses
the largest-remainder method, so the parts always add up to the whole exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction


class RoundingMode(StrEnum):
    """How an exact value becomes a whole number of minor units."""

    DOWN = "down"  # toward zero: 31.9 -> 31, -31.9 -> -31 (切り捨て)
    UP = "up"  # away from zero: 31.1 -> 32 (切り上げ)
    HALF_UP = "half_up"  # halves away from zero: 31.5 -> 32, 31.4 -> 31 (四捨五入)
    HALF_EVEN = "half_even"  # halves to the even neighbour: 31.5 -> 32, 30.5 -> 30


def round_fraction(value: Fraction, mode: RoundingMode = RoundingMode.HALF_EVEN) -> int:
    """Round an exact rational to an integer with ``mode``.

    Args:
        value: The exact value, e.g. ``Fraction(315, 10)``.
        mode: The rounding mode; half-even unless a caller asks otherwise.

    Returns:
        The rounded integer.
    """
    mode = RoundingMode(mode)
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole, rest = divmod(magnitude.numerator, magnitude.denominator)
    remainder = Fraction(rest, magnitude.denominator)
    if remainder == 0:
        return sign * whole
    if mode is RoundingMode.DOWN:
        rounded = whole
    elif mode is RoundingMode.UP:
        rounded = whole + 1
    elif remainder != Fraction(1, 2):
        rounded = whole + (1 if remainder > Fraction(1, 2) else 0)
    elif mode is RoundingMode.HALF_UP:
        rounded = whole + 1
    else:  # HALF_EVEN on an exact half
        rounded = whole + (whole % 2)
    return sign * rounded


def parse_decimal(value: Decimal | int | str, *, what: str) -> Decimal:
    """A finite ``Decimal`` from a ``Decimal``, ``int`` or numeric string; never a float.

    Args:
        value: The number. Floats (and bools) are refused: ``0.015`` as a float is
            not 0.015, so a price given as one would silently differ from the price
            the user typed.
        what: What the number is, for the error message (``"unit_amount"``).

    Raises:
        TypeError: For a float, a bool or any other type.
        ValueError: For a string that is not a finite number.
    """
    if isinstance(value, (float, bool)) or not isinstance(value, (Decimal, int, str)):
        raise TypeError(f"{what} must be a str, int or Decimal, not {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    return number


def allocate(total: int, weights: Sequence[int | Fraction | Decimal]) -> tuple[int, ...]:
    """Split ``total`` minor units in proportion to ``weights``, exactly.

    The largest-remainder method: each part first gets the whole part of its exact
    share ``total * weight / sum(weights)`` (toward zero), then the units still left
    go, one each, to the parts with the largest fractional remainders; equal
    remainders go to the earlier part. So the parts add up to ``total``, each part
    is within one unit of its exact share, a part of weight zero gets nothing, and
    the result depends only on the order of ``weights``.

    Args:
        total: The amount to split (negative amounts split as the mirror image).
        weights: Non-negative weights, at least one of them positive unless
            ``total`` is zero.

    Returns:
        One integer per weight, in the same order, summing to ``total``.

    Raises:
        ValueError: For a negative weight, or a non-zero total with no weight.
    """
    exact = [Fraction(w) for w in weights]
    if any(w < 0 for w in exact):
        raise ValueError("allocation weights must not be negative")
    whole = sum(exact, Fraction(0))
    if whole == 0:
        if total != 0:
            raise ValueError(f"cannot allocate {total} over nothing (all weights are zero)")
        return tuple(0 for _ in exact)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    shares = [magnitude * w / whole for w in exact]
    parts = [s.numerator // s.denominator for s in shares]
    left = magnitude - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for index in by_remainder[:left]:
        parts[index] += 1
    return tuple(sign * part for part in parts)
