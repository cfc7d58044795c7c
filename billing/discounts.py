"""Coupons: percentage or fixed-amount discounts, for one, N or every period.

Modelled on Stripe's coupons:

- **Value**: ``percent_off`` (a ``Decimal`` in ``(0, 100]``) or ``amount_off`` (an
  integer in the minor units of the coupon's ``currency``), never both.
- **Duration**: ``once`` discounts the first invoice after redemption,
  ``repeating`` the first ``duration_in_periods`` invoices, ``forever`` every one.
  Periods are counted from the redemption: period index 0 is the first invoice the
  coupon applies to (``applies``).
- **Redemption limits** decide whether a coupon may still be *redeemed*
  (``redemption_error``): not after ``redeem_by`` (compared with the ``at`` the
  caller passes; this module never reads a clock) and not more than
  ``max_redemptions`` times in all. A coupon redeemed in time keeps applying for its
  whole duration after ``redeem_by`` has passed, as in Stripe and Lago.
- **Amount**: a discount never exceeds the subtotal it applies to. A percentage is
  computed exactly and rounded **half-even once** to whole minor units; a fixed
  amount is capped at the subtotal, and its currency must be the invoice's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import TypeGuard

from billing.money import normalize_currency
from billing.rounding import RoundingMode, parse_decimal, round_fraction


class CouponDuration(StrEnum):
    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


@dataclass(frozen=True)
class Coupon:
    """A coupon definition.

    Attributes:
        code: The code customers type or support applies (``"WELCOME10"``).
        duration: ``once``, ``repeating`` or ``forever``.
        percent_off: The percentage taken off, ``0 < percent_off <= 100``.
        amount_off: The amount taken off, in minor units of ``currency``.
        currency: The currency of ``amount_off`` (required with it, refused
            without it).
        duration_in_periods: How many invoices a ``repeating`` coupon discounts.
        redeem_by: The last moment the coupon can be redeemed (timezone-aware).
        max_redemptions: How many times the coupon can be redeemed in all.
    """

    code: str
    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_in_periods: int | None = None
    redeem_by: datetime | None = None
    max_redemptions: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip():
            raise ValueError("a coupon needs a non-empty code")
        object.__setattr__(self, "duration", CouponDuration(self.duration))
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("a coupon takes either percent_off or amount_off, exactly one")
        if self.percent_off is not None:
            percent = parse_decimal(self.percent_off, what="percent_off")
            if not 0 < percent <= 100:
                raise ValueError(f"percent_off must be above 0 and at most 100, got {percent}")
            object.__setattr__(self, "percent_off", percent)
            if self.currency is not None:
                raise ValueError("a percentage coupon has no currency")
        else:
            if not _is_int(self.amount_off) or self.amount_off <= 0:
                raise ValueError("amount_off must be a positive integer in minor units")
            if self.currency is None:
                raise ValueError("a fixed-amount coupon needs the currency of amount_off")
            object.__setattr__(self, "currency", normalize_currency(self.currency))
        if self.duration is CouponDuration.REPEATING:
            if not _is_int(self.duration_in_periods) or self.duration_in_periods < 1:
                raise ValueError("a repeating coupon needs duration_in_periods of at least 1")
        elif self.duration_in_periods is not None:
            raise ValueError(f"duration_in_periods is for repeating coupons, not {self.duration}")
        if self.redeem_by is not None and self.redeem_by.tzinfo is None:
            raise ValueError("redeem_by must be timezone-aware")
        if self.max_redemptions is not None and (
            not _is_int(self.max_redemptions) or self.max_redemptions < 1
        ):
            raise ValueError("max_redemptions must be a positive integer")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def redemption_error(coupon: Coupon, *, at: datetime, times_redeemed: int) -> str | None:
    """Why ``coupon`` cannot be redeemed at ``at``, or ``None`` if it can.

    Args:
        coupon: The coupon.
        at: The moment of redemption (timezone-aware), passed in by the caller.
        times_redeemed: How many times the coupon has been redeemed before.

    Returns:
        A sentence for the API's error response, or ``None``.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    if coupon.redeem_by is not None and at > coupon.redeem_by:
        return f"coupon {coupon.code!r} expired at {coupon.redeem_by.isoformat()}"
    if coupon.max_redemptions is not None and times_redeemed >= coupon.max_redemptions:
        return (
            f"coupon {coupon.code!r} has reached its limit of "
            f"{coupon.max_redemptions} redemption(s)"
        )
    return None


def applies(coupon: Coupon, *, period_index: int) -> bool:
    """Whether a redeemed coupon discounts the invoice of period ``period_index``.

    Args:
        coupon: The redeemed coupon.
        period_index: 0 for the first invoice after redemption, 1 for the next...

    Returns:
        ``True`` for index 0 of a ``once`` coupon, indexes below
        ``duration_in_periods`` of a ``repeating`` one, any index of ``forever``.
    """
    if not _is_int(period_index) or period_index < 0:
        raise ValueError("period_index must be a non-negative integer")
    if coupon.duration is CouponDuration.ONCE:
        return period_index == 0
    if coupon.duration is CouponDuration.REPEATING:
        assert coupon.duration_in_periods is not None
        return period_index < coupon.duration_in_periods
    return True


def discount_amount(coupon: Coupon, *, subtotal: int, currency: str) -> int:
    """The discount ``coupon`` gives on ``subtotal``, in minor units.

    Args:
        coupon: The coupon.
        subtotal: The discountable amount in minor units (not negative).
        currency: The invoice's currency.

    Returns:
        ``round_half_even(subtotal x percent_off / 100)`` or ``min(amount_off,
        subtotal)``; never more than ``subtotal``.

    Raises:
        ValueError: For a negative subtotal, or a fixed-amount coupon in another
            currency.
    """
    if not _is_int(subtotal) or subtotal < 0:
        raise ValueError("subtotal must be a non-negative integer in minor units")
    code = normalize_currency(currency)
    if coupon.percent_off is not None:
        exact = Fraction(subtotal) * Fraction(coupon.percent_off) / 100
        return min(round_fraction(exact, RoundingMode.HALF_EVEN), subtotal)
    assert coupon.amount_off is not None
    if coupon.currency != code:
        raise ValueError(
            f"coupon {coupon.code!r} takes {coupon.currency} off and cannot apply to "
            f"a {code} invoice"
        )
    return min(coupon.amount_off, subtotal)
