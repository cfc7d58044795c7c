"""MRR of one subscription: normalised to a month, rounded half-even once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.analytics.mrr import RecurringItem, arr, subscription_mrr
from billing.calendar import Interval
from billing.discounts import Coupon, CouponDuration
from billing.rating import FlatPrice, PerUnitPrice

PLAN = RecurringItem(price=FlatPrice(amount=Decimal(3000)))


def mrr(items: list[RecurringItem], interval: Interval = Interval.MONTH, **kw: object) -> int:
    return subscription_mrr(
        status=str(kw.pop("status", "active")),
        items=items,
        interval=interval,
        currency=str(kw.pop("currency", "JPY")),
        **kw,  # type: ignore[arg-type]
    )


def test_intervals_are_normalised_to_a_month() -> None:
    assert mrr([PLAN]) == 3000
    # 39,800 / 12 = 3,316.666... -> 3,317
    assert mrr([RecurringItem(price=FlatPrice(amount=Decimal(39800)))], Interval.YEAR) == 3317
    # 1,000 x 52 / 12 = 4,333.33... -> 4,333
    assert mrr([RecurringItem(price=FlatPrice(amount=Decimal(1000)))], Interval.WEEK) == 4333
    # 100 x 365 / 12 = 3,041.66... -> 3,042
    assert mrr([RecurringItem(price=FlatPrice(amount=Decimal(100)))], Interval.DAY) == 3042
    # quarterly 9,000 / 3 = 3,000
    assert mrr([RecurringItem(price=FlatPrice(amount=Decimal(9000)))], interval_count=3) == 3000
    # $99.00 a year: 9,900 cents / 12 = 825 cents
    assert (
        mrr([RecurringItem(price=FlatPrice(amount=Decimal(9900)))], Interval.YEAR, currency="USD")
        == 825
    )


def test_rounding_is_half_even_once() -> None:
    # 30 / 12 = 2.5 -> 2 (half to even); 42 / 12 = 3.5 -> 4
    assert mrr([RecurringItem(price=FlatPrice(amount=Decimal(30)))], Interval.YEAR) == 2
    assert mrr([RecurringItem(price=FlatPrice(amount=Decimal(42)))], Interval.YEAR) == 4
    # two yearly items: (30 + 42) / 12 = 6 exactly, not 2 + 4 rounded apart
    both = [RecurringItem(price=FlatPrice(amount=Decimal(n))) for n in (30, 42)]
    assert mrr(both, Interval.YEAR) == 6


def test_quantity_and_items_are_summed_metered_left_out() -> None:
    seats = RecurringItem(price=PerUnitPrice(unit_amount=Decimal(500)), quantity=3)
    calls = RecurringItem(
        price=PerUnitPrice(unit_amount=Decimal("0.015")), quantity=0, metered=True
    )
    assert mrr([PLAN, seats, calls]) == 3000 + 3 * 500


def test_only_forever_coupons_reduce_mrr() -> None:
    forever = Coupon(code="TEN", duration=CouponDuration.FOREVER, percent_off=Decimal(10))
    once = Coupon(code="HALF", duration=CouponDuration.ONCE, percent_off=Decimal(50))
    repeating = Coupon(
        code="3M", duration=CouponDuration.REPEATING, percent_off=Decimal(50), duration_in_periods=3
    )
    assert mrr([PLAN], coupon=forever) == 2700  # 3,000 - 300
    assert mrr([PLAN], coupon=once) == 3000
    assert mrr([PLAN], coupon=repeating) == 3000
    fixed = Coupon(code="OFF", duration=CouponDuration.FOREVER, amount_off=1200, currency="JPY")
    # yearly 39,800 - 1,200 = 38,600 / 12 = 3,216.66... -> 3,217
    yearly = RecurringItem(price=FlatPrice(amount=Decimal(39800)))
    assert mrr([yearly], Interval.YEAR, coupon=fixed) == 3217


@pytest.mark.parametrize(
    ("status", "expected"),
    [("active", 3000), ("past_due", 3000), ("trialing", 0), ("suspended", 0), ("paused", 0),
     ("canceled", 0)],
)  # fmt: skip
def test_status_decides_whether_it_counts(status: str, expected: int) -> None:
    assert mrr([PLAN], status=status) == expected


def test_arr_and_bad_interval_count() -> None:
    assert arr(3317) == 39804
    with pytest.raises(ValueError, match="interval_count"):
        mrr([PLAN], interval_count=0)
