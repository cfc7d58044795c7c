"""Coupons: value, duration, expiry, redemption limits, capped and rounded once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.discounts import (
    Coupon,
    CouponDuration,
    applies,
    discount_amount,
    redemption_error,
)

AT = datetime(2027, 5, 1, 12, tzinfo=UTC)

TEN_PERCENT = Coupon(code="TEN", duration=CouponDuration.FOREVER, percent_off=Decimal(10))
THOUSAND_YEN = Coupon(code="WELCOME", duration=CouponDuration.ONCE, amount_off=1000, currency="jpy")


def test_percentage_is_rounded_half_even_once() -> None:
    assert discount_amount(TEN_PERCENT, subtotal=9800, currency="JPY") == 980
    assert discount_amount(TEN_PERCENT, subtotal=105, currency="JPY") == 10  # 10.5 -> 10
    assert discount_amount(TEN_PERCENT, subtotal=115, currency="JPY") == 12  # 11.5 -> 12
    third = Coupon(code="T", duration="forever", percent_off=Decimal("33.3333"))  # type: ignore[arg-type]
    assert discount_amount(third, subtotal=1000, currency="USD") == 333


def test_fixed_amount_is_capped_at_the_subtotal() -> None:
    assert THOUSAND_YEN.currency == "JPY"
    assert discount_amount(THOUSAND_YEN, subtotal=3000, currency="JPY") == 1000
    assert discount_amount(THOUSAND_YEN, subtotal=700, currency="JPY") == 700
    assert discount_amount(THOUSAND_YEN, subtotal=0, currency="JPY") == 0


def test_hundred_percent_takes_everything() -> None:
    free = Coupon(code="FREE", duration=CouponDuration.ONCE, percent_off=Decimal(100))
    assert discount_amount(free, subtotal=12345, currency="JPY") == 12345


def test_fixed_amount_in_another_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="takes JPY off and cannot apply to a USD invoice"):
        discount_amount(THOUSAND_YEN, subtotal=3000, currency="usd")


def test_negative_subtotal_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        discount_amount(TEN_PERCENT, subtotal=-1, currency="JPY")


# --- duration --------------------------------------------------------------------------------


def test_durations() -> None:
    repeating = Coupon(
        code="3M", duration=CouponDuration.REPEATING, percent_off=Decimal(20), duration_in_periods=3
    )
    assert [applies(THOUSAND_YEN, period_index=i) for i in range(3)] == [True, False, False]
    assert [applies(repeating, period_index=i) for i in range(5)] == [
        True, True, True, False, False,
    ]  # fmt: skip
    assert all(applies(TEN_PERCENT, period_index=i) for i in (0, 1, 100, 10_000))
    with pytest.raises(ValueError, match="period_index"):
        applies(TEN_PERCENT, period_index=-1)


# --- redemption ------------------------------------------------------------------------------


def test_expiry_is_compared_with_the_moment_passed_in() -> None:
    coupon = Coupon(
        code="SPRING", duration=CouponDuration.ONCE, percent_off=Decimal(15), redeem_by=AT
    )
    assert redemption_error(coupon, at=AT, times_redeemed=0) is None
    reason = redemption_error(coupon, at=AT + timedelta(seconds=1), times_redeemed=0)
    assert reason is not None and "expired" in reason and "SPRING" in reason
    # Once redeemed in time, the coupon keeps applying for its duration.
    assert applies(coupon, period_index=0)


def test_redemption_limit() -> None:
    coupon = Coupon(
        code="FIRST100", duration=CouponDuration.ONCE, percent_off=Decimal(50), max_redemptions=100
    )
    assert redemption_error(coupon, at=AT, times_redeemed=99) is None
    reason = redemption_error(coupon, at=AT, times_redeemed=100)
    assert reason is not None and "limit of 100" in reason


def test_redemption_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        redemption_error(TEN_PERCENT, at=datetime(2027, 5, 1), times_redeemed=0)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "exactly one"),
        ({"percent_off": Decimal(10), "amount_off": 100, "currency": "JPY"}, "exactly one"),
        ({"percent_off": Decimal(0)}, "above 0 and at most 100"),
        ({"percent_off": Decimal("100.01")}, "above 0 and at most 100"),
        ({"percent_off": Decimal(-5)}, "above 0 and at most 100"),
        ({"percent_off": Decimal(10), "currency": "JPY"}, "no currency"),
        ({"amount_off": 0, "currency": "JPY"}, "positive integer"),
        ({"amount_off": 10}, "needs the currency"),
        ({"amount_off": 10, "currency": "XXX"}, "unknown currency"),
        ({"percent_off": Decimal(10), "duration_in_periods": 2}, "for repeating coupons"),
        ({"percent_off": Decimal(10), "max_redemptions": 0}, "max_redemptions"),
        ({"percent_off": Decimal(10), "redeem_by": datetime(2027, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
    ],
)
def test_bad_coupons_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Coupon(code="X", duration=CouponDuration.ONCE, **arguments)  # type: ignore[arg-type]


def test_repeating_needs_a_count() -> None:
    with pytest.raises(ValueError, match="duration_in_periods of at least 1"):
        Coupon(code="X", duration=CouponDuration.REPEATING, percent_off=Decimal(10))


def test_percent_off_as_float_is_refused() -> None:
    with pytest.raises(TypeError, match="percent_off"):
        Coupon(code="X", duration=CouponDuration.ONCE, percent_off=12.5)  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------------

percents = st.decimals(min_value=Decimal("0.01"), max_value=100, places=2)
subtotals = st.integers(min_value=0, max_value=10**12)


@given(percents, subtotals)
def test_percentage_discount_is_exact_rounded_once_and_bounded(
    percent: Decimal, subtotal: int
) -> None:
    coupon = Coupon(code="P", duration=CouponDuration.FOREVER, percent_off=percent)
    amount = discount_amount(coupon, subtotal=subtotal, currency="JPY")
    assert isinstance(amount, int)
    assert 0 <= amount <= subtotal
    assert amount == round(subtotal * percent / 100)  # Decimal round(): half-even


@given(st.integers(min_value=1, max_value=10**9), subtotals)
def test_fixed_discount_never_exceeds_the_subtotal(amount_off: int, subtotal: int) -> None:
    coupon = Coupon(code="F", duration=CouponDuration.ONCE, amount_off=amount_off, currency="USD")
    assert discount_amount(coupon, subtotal=subtotal, currency="USD") == min(amount_off, subtotal)
