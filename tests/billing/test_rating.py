"""Pricing models: flat, per unit, graduated, volume, package; rounded once."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import KNOWN_CURRENCIES
from billing.rating import (
    FlatPrice,
    GraduatedPrice,
    PackagePrice,
    PerUnitPrice,
    PricingModel,
    Tier,
    VolumePrice,
    rate,
)

D = Decimal

# 0-1,000 calls at 2 yen, 1,001-10,000 at 1.5 yen, beyond at 1 yen.
TIERS = (
    Tier(up_to=D(1000), unit_amount=D(2)),
    Tier(up_to=D(10000), unit_amount=D("1.5")),
    Tier(up_to=None, unit_amount=D(1)),
)


# --- worked examples -------------------------------------------------------------------


def test_graduated_and_volume_on_the_same_quantity() -> None:
    graduated = rate(price=GraduatedPrice(tiers=TIERS), quantity=D(12000), currency="JPY")
    # 1,000 x 2 + 9,000 x 1.5 + 2,000 x 1 = 2,000 + 13,500 + 2,000
    assert graduated.amount == 17500
    assert [(c.tier, c.units, c.amount) for c in graduated.components] == [
        (1, D(1000), 2000),
        (2, D(9000), 13500),
        (3, D(2000), 2000),
    ]
    volume = rate(price=VolumePrice(tiers=TIERS), quantity=D(12000), currency="JPY")
    # all 12,000 calls at the third tier's 1 yen
    assert volume.amount == 12000
    assert [(c.tier, c.units, c.unit_amount) for c in volume.components] == [(3, D(12000), D(1))]


def test_volume_boundaries_are_inclusive_and_the_price_drops_after_them() -> None:
    price = VolumePrice(tiers=TIERS)
    assert rate(price=price, quantity=D(1000), currency="JPY").amount == 2000  # tier 1
    assert rate(price=price, quantity=D("1000.5"), currency="JPY").amount == 1501  # 1500.75
    assert rate(price=price, quantity=D(10000), currency="JPY").amount == 15000  # tier 2
    assert rate(price=price, quantity=D(10001), currency="JPY").amount == 10001  # tier 3


def test_graduated_boundaries() -> None:
    price = GraduatedPrice(tiers=TIERS)
    assert rate(price=price, quantity=D(1000), currency="JPY").amount == 2000
    assert rate(price=price, quantity=D(1001), currency="JPY").amount == 2002  # 2000 + 1.5
    assert len(rate(price=price, quantity=D(1000), currency="JPY").components) == 1
    assert rate(price=price, quantity=D(10000), currency="JPY").amount == 15500


def test_sub_minor_unit_prices_round_half_even_once() -> None:
    price = PerUnitPrice(unit_amount=D("0.015"))  # 0.015 yen per API call
    assert rate(price=price, quantity=12345, currency="JPY").amount == 185  # 185.175
    assert rate(price=price, quantity=100, currency="JPY").amount == 2  # 1.5 -> 2
    assert rate(price=price, quantity=300, currency="JPY").amount == 4  # 4.5 -> 4
    line = rate(price=price, quantity=12345, currency="jpy")
    assert line.exact_amount == D("185.175")
    assert line.currency == "JPY"
    assert line.model is PricingModel.PER_UNIT


def test_rounding_happens_once_not_per_tier() -> None:
    tiers = (
        Tier(up_to=D(1), unit_amount=D("0.5")),
        Tier(up_to=D(2), unit_amount=D("0.5")),
        Tier(up_to=None, unit_amount=D("0.5")),
    )
    result = rate(price=GraduatedPrice(tiers=tiers), quantity=3, currency="JPY")
    # per tier: 0.5 -> 0 three times = 0; once: 1.5 -> 2
    assert result.amount == 2
    assert sum(c.amount for c in result.components) == 2


def test_usd_cents_with_fractions_of_a_cent() -> None:
    price = PerUnitPrice(unit_amount=D("0.25"))  # a quarter cent per message
    assert rate(price=price, quantity=1234, currency="USD").amount == 308  # 308.5 -> 308


def test_package_rounds_packages_up() -> None:
    price = PackagePrice(package_size=D(1000), package_amount=D(500))
    amounts = [rate(price=price, quantity=q, currency="JPY").amount for q in (0, 1, 1000, 1001)]
    assert amounts == [0, 500, 500, 1000]
    fractional = rate(price=price, quantity=D("2000.1"), currency="JPY")
    assert fractional.components[0].units == 3


def test_flat_price_ignores_the_quantity() -> None:
    price = FlatPrice(amount=D(3000))
    assert rate(price=price, quantity=0, currency="JPY").amount == 3000
    assert rate(price=price, quantity=99, currency="JPY").amount == 3000


def test_tier_flat_fees() -> None:
    tiers = (
        Tier(up_to=D(100), unit_amount=D(0), flat_amount=D(1000)),
        Tier(up_to=None, unit_amount=D(5), flat_amount=D(200)),
    )
    graduated = GraduatedPrice(tiers=tiers)
    assert rate(price=graduated, quantity=0, currency="JPY").amount == 1000  # minimum charge
    assert rate(price=graduated, quantity=100, currency="JPY").amount == 1000
    assert rate(price=graduated, quantity=101, currency="JPY").amount == 1205
    volume = VolumePrice(tiers=tiers)
    assert rate(price=volume, quantity=50, currency="JPY").amount == 1000
    assert rate(price=volume, quantity=101, currency="JPY").amount == 705


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ((), "at least one tier"),
        ((Tier(up_to=D(10)),), "last tier must be open-ended"),
        ((Tier(up_to=None), Tier(up_to=None)), "only the last tier"),
        ((Tier(up_to=D(10)), Tier(up_to=D(5)), Tier(up_to=None)), "tiers must ascend"),
        ((Tier(up_to=D(10)), Tier(up_to=D(10)), Tier(up_to=None)), "tiers must ascend"),
    ],
)
def test_bad_tiers_are_refused(tiers: tuple[Tier, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GraduatedPrice(tiers=tiers)
    with pytest.raises(ValueError, match=message):
        VolumePrice(tiers=tiers)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Tier(up_to=D(10), unit_amount=D(-1)), "unit_amount must not be negative"),
        (lambda: Tier(up_to=D(10), flat_amount=D(-1)), "flat_amount must not be negative"),
        (lambda: Tier(up_to=D(0)), "up_to must be positive"),
        (lambda: PerUnitPrice(unit_amount=D("-0.01")), "must not be negative"),
        (lambda: PackagePrice(package_size=D(0), package_amount=D(1)), "package_size"),
        (lambda: FlatPrice(amount=D("NaN")), "finite"),
    ],
)
def test_bad_amounts_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_floats_are_refused_everywhere() -> None:
    with pytest.raises(TypeError, match="unit_amount"):
        PerUnitPrice(unit_amount=0.015)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="quantity"):
        rate(price=PerUnitPrice(unit_amount=D(1)), quantity=1.5, currency="JPY")  # type: ignore[arg-type]


def test_strings_are_accepted_for_price_amounts() -> None:
    price = PerUnitPrice(unit_amount="0.015")  # type: ignore[arg-type]
    assert price.unit_amount == D("0.015")


def test_negative_quantity_and_unknown_currency_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        rate(price=PerUnitPrice(unit_amount=D(1)), quantity=-1, currency="JPY")
    with pytest.raises(ValueError, match="XXX"):
        rate(price=PerUnitPrice(unit_amount=D(1)), quantity=1, currency="XXX")


# --- properties ---------------------------------------------------------------------------

unit_amounts = st.decimals(min_value=0, max_value=10000, places=4, allow_nan=False)
flat_amounts = st.decimals(min_value=0, max_value=100000, places=2, allow_nan=False)
quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False)
currencies = st.sampled_from(sorted(KNOWN_CURRENCIES))


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(
        draw(st.sets(st.decimals(min_value=1, max_value=10**6, places=1), min_size=0, max_size=4))
    )
    ups: list[Decimal | None] = [*bounds, None]
    return tuple(
        Tier(up_to=up, unit_amount=draw(unit_amounts), flat_amount=draw(flat_amounts)) for up in ups
    )


def _exact_graduated(tiers: tuple[Tier, ...], quantity: Decimal) -> Fraction:
    total, lower = Fraction(0), Fraction(0)
    q = Fraction(quantity)
    for index, tier in enumerate(tiers):
        if index and q <= lower:
            break
        top = q if tier.up_to is None else min(q, Fraction(tier.up_to))
        total += (top - lower) * Fraction(tier.unit_amount) + Fraction(tier.flat_amount)
        if tier.up_to is None:
            break
        lower = Fraction(tier.up_to)
    return total


@given(tier_lists(), quantities, currencies)
def test_graduated_is_the_exact_sum_rounded_once(
    tiers: tuple[Tier, ...], quantity: Decimal, currency: str
) -> None:
    result = rate(price=GraduatedPrice(tiers=tiers), quantity=quantity, currency=currency)
    assert isinstance(result.amount, int)
    assert result.amount == round(_exact_graduated(tiers, quantity))  # half-even
    assert sum(c.amount for c in result.components) == result.amount
    assert all(isinstance(c.amount, int) for c in result.components)
    assert sum(c.units for c in result.components) == quantity


@given(tier_lists(), quantities, quantities)
def test_graduated_is_monotone_in_quantity(
    tiers: tuple[Tier, ...], first: Decimal, second: Decimal
) -> None:
    low, high = sorted((first, second))
    price = GraduatedPrice(tiers=tiers)
    assert (
        rate(price=price, quantity=low, currency="JPY").amount
        <= rate(price=price, quantity=high, currency="JPY").amount
    )


@given(tier_lists(), st.data())
def test_volume_prices_the_whole_quantity_in_the_tier_it_lands_in(
    tiers: tuple[Tier, ...], data: st.DataObject
) -> None:
    price = VolumePrice(tiers=tiers)
    for index, tier in enumerate(tiers):
        if tier.up_to is None:
            continue
        # Exactly on the boundary: this tier.
        on = rate(price=price, quantity=tier.up_to, currency="JPY")
        assert on.components[0].tier == index + 1
        assert on.amount == round(Fraction(tier.up_to * tier.unit_amount + tier.flat_amount))
        # Just above it: the next tier, for the whole quantity.
        above = tier.up_to + D("0.001")
        after = rate(price=price, quantity=above, currency="JPY")
        following = tiers[index + 1]
        assert after.components[0].tier == index + 2
        assert after.components[0].units == above
        assert after.amount == round(
            Fraction(above * following.unit_amount + following.flat_amount)
        )
    quantity = data.draw(quantities)
    result = rate(price=price, quantity=quantity, currency="JPY")
    assert len(result.components) == 1 and result.components[0].units == quantity


@given(
    st.decimals(min_value=1, max_value=10**4, places=0),
    unit_amounts,
    quantities,
)
def test_package_is_ceiling_of_packages(size: Decimal, amount: Decimal, quantity: Decimal) -> None:
    result = rate(
        price=PackagePrice(package_size=size, package_amount=amount),
        quantity=quantity,
        currency="JPY",
    )
    packages = math.ceil(Fraction(quantity) / Fraction(size))
    assert result.components[0].units == packages
    assert result.amount == round(packages * Fraction(amount))
