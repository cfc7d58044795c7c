"""Proration: what a plan change in the middle of a paid period costs or credits.

Upgrading at moment ``at`` credits the unused part of the old price and charges the
same part of the new one, both measured in seconds of the period (so February's
shorter month is exact). Each of the two amounts is rounded half-even once, at the
last step, and the net is their difference: the two invoice lines always add up to
the net, to the last yen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction


@dataclass(frozen=True)
class Proration:
    """Amounts in minor units of the subscription's currency."""

    remaining: Fraction  # the part of the period still to come, 0..1
    credit: int  # unused time on the old price, returned to the customer
    charge: int  # the same time on the new price
    net: int  # charge - credit: positive is owed now, negative is a credit


_MICROSECOND = timedelta(microseconds=1)


def _round_half_even(value: Fraction) -> int:
    # round() on a Fraction rounds half to even, exactly (no float involved).
    return round(value)


def prorate(
    *,
    old_amount: int,
    new_amount: int,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> Proration:
    """Prorate switching from ``old_amount`` to ``new_amount`` per period at ``at``.

    Raises ``ValueError`` for naive datetimes, an empty period, a moment outside it,
    or a negative amount.
    """
    for moment in (period_start, period_end, at):
        if moment.tzinfo is None:
            raise ValueError("proration needs timezone-aware datetimes")
    if period_end <= period_start:
        raise ValueError("the period must end after it starts")
    if not period_start <= at <= period_end:
        raise ValueError("the change must fall inside the current period")
    for amount in (old_amount, new_amount):
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ValueError("amounts are non-negative integers in minor units")
    total = period_end - period_start
    left = period_end - at
    # timedelta // timedelta is exact in microseconds; a Fraction keeps it exact.
    remaining = Fraction(left // _MICROSECOND, total // _MICROSECOND)
    credit = _round_half_even(old_amount * remaining)
    charge = _round_half_even(new_amount * remaining)
    return Proration(remaining=remaining, credit=credit, charge=charge, net=charge - credit)
