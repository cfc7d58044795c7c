"""A subscription's MRR (monthly recurring revenue) from its prices, in minor units.

The rules, anchored on Stripe Billing's analytics:

- **Normalised to a month**: a period's amount x 1 for monthly prices, / 12 for
  yearly, x 52 / 12 for weekly, x 365 / 12 for daily, divided by the interval count
  (a 3-month price counts a third of its amount).
- **Items**: each licensed item is rated per period with kakin's own rating (a line
  rounded as the invoice rounds it), quantity included, and the items are summed.
- **Metered** items are left out of MRR: their money is reported beside it as usage
  revenue (``billing.analytics.revenue``).
- **Discounts**: a ``forever`` coupon reduces MRR (by the discount it gives on the
  period's subtotal); ``once`` and ``repeating`` coupons do not, as in Stripe's
  default: they are temporary, and MRR is a forward-looking run rate.
- **Status**: ``active`` and ``past_due`` count; ``trialing`` is 0 (no revenue
  yet), and so are ``suspended`` (kakin's end of the dunning ladder, Stripe's
  ``unpaid``), ``paused`` and ``canceled``. A cancel at period end keeps the
  subscription ``active`` until the cancellation takes effect, so it churns then.
- **Rounding**: the exact monthly amount is rounded half-even to whole minor units
  once per subscription; customer and total MRR are sums of those integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing.calendar import Interval
from billing.discounts import Coupon, CouponDuration, discount_amount
from billing.rating import Price, rate
from billing.rounding import RoundingMode, round_fraction

# The values of models.payloads.SubscriptionStatus that count towards MRR (billing/
# cannot import models/; tests pin that these are real statuses).
COUNTED_STATUSES = frozenset({"active", "past_due"})

# How many times a one-interval price is billed in a month.
_PER_MONTH = {
    Interval.DAY: Fraction(365, 12),
    Interval.WEEK: Fraction(52, 12),
    Interval.MONTH: Fraction(1),
    Interval.YEAR: Fraction(1, 12),
}


@dataclass(frozen=True)
class RecurringItem:
    """One item of a subscription: a price, a quantity, and whether it is metered."""

    price: Price
    quantity: Decimal | int = 1
    metered: bool = False


def period_amount(*, items: Sequence[RecurringItem], currency: str) -> int:
    """The licensed (non-metered) amount billed per period, before discounts."""
    return sum(
        rate(price=item.price, quantity=item.quantity, currency=currency).amount
        for item in items
        if not item.metered
    )


def subscription_mrr(
    *,
    status: str,
    items: Sequence[RecurringItem],
    interval: Interval,
    currency: str,
    interval_count: int = 1,
    coupon: Coupon | None = None,
) -> int:
    """The subscription's MRR in minor units of ``currency``.

    Args:
        status: The subscription's status (a ``SubscriptionStatus`` value).
        items: Its prices with quantities.
        interval: The billing interval of its prices.
        currency: The subscription's currency.
        interval_count: Intervals per period (3 with ``month``: quarterly).
        coupon: The coupon redeemed on it, if any (only ``forever`` counts).

    Returns:
        ``round_half_even((subtotal - forever discount) x per-month factor /
        interval_count)``, or 0 when the status does not count.

    Example:
        A yearly 39,800 JPY plan: 39,800 / 12 = 3,316.67 -> 3,317 JPY.
    """
    if not isinstance(interval_count, int) or interval_count < 1:
        raise ValueError("interval_count must be a positive integer")
    if status not in COUNTED_STATUSES:
        return 0
    subtotal = period_amount(items=items, currency=currency)
    discount = 0
    if coupon is not None and coupon.duration is CouponDuration.FOREVER:
        discount = discount_amount(coupon, subtotal=subtotal, currency=currency)
    exact = Fraction(subtotal - discount) * _PER_MONTH[Interval(interval)] / interval_count
    return round_fraction(exact, RoundingMode.HALF_EVEN)


def arr(mrr: int) -> int:
    """Annual recurring revenue: MRR x 12 (exact, as MRR is already whole)."""
    return mrr * 12
