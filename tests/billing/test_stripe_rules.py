"""Stripe's currency rules as pure functions: three-decimal steps and minimum charges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import KNOWN_CURRENCIES, exponent
from billing.stripe_rules import (
    CHARGE_STEPS,
    MINIMUM_CHARGES,
    charge_step,
    chargeable,
    minimum_charge,
    settle,
)

THREE_DECIMALS = ["BHD", "JOD", "KWD", "OMR", "TND"]


@pytest.mark.parametrize("currency", THREE_DECIMALS)
def test_a_three_decimal_amount_is_rounded_down_to_what_stripe_charges(currency: str) -> None:
    assert exponent(currency) == 3 and charge_step(currency) == 10
    assert not chargeable(1235, currency)
    settled = settle(1235, currency)  # 1.235 -> 1.230
    assert (settled.rounding, settled.carried_forward, settled.charge) == (-5, 0, 1230)
    assert chargeable(settled.charge, currency)
    assert settle(1230, currency).rounding == 0


def test_published_minimums_are_kept_in_minor_units() -> None:
    assert [minimum_charge(c) for c in ("USD", "JPY", "EUR", "GBP", "jpy")] == [50, 50, 50, 30, 50]
    assert minimum_charge("KWD") == 0  # not published: the USD equivalent, unknowable here
    assert set(MINIMUM_CHARGES) <= KNOWN_CURRENCIES and set(CHARGE_STEPS) <= KNOWN_CURRENCIES


@pytest.mark.parametrize(
    ("amount", "currency", "carried", "charge"),
    [(40, "JPY", 40, 0), (49, "JPY", 49, 0), (50, "JPY", 0, 50), (29, "GBP", 29, 0),
     (30, "GBP", 0, 30), (49, "USD", 49, 0), (0, "JPY", 0, 0)],
)  # fmt: skip
def test_an_amount_below_the_minimum_is_carried_forward_whole(
    amount: int, currency: str, carried: int, charge: int
) -> None:
    settled = settle(amount, currency)
    assert (settled.rounding, settled.carried_forward, settled.charge) == (0, carried, charge)


def test_settle_refuses_what_is_not_an_amount_due() -> None:
    with pytest.raises(ValueError, match="never negative"):
        settle(-1, "JPY")
    with pytest.raises(TypeError):
        settle(1.5, "JPY")  # type: ignore[arg-type]


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(sorted(KNOWN_CURRENCIES)),
)
def test_settling_charges_nothing_or_what_stripe_accepts_and_loses_less_than_a_step(
    amount: int, currency: str
) -> None:
    settled = settle(amount, currency)
    assert settled.charge == 0 or chargeable(settled.charge, currency)
    assert amount + settled.rounding - settled.carried_forward == settled.charge
    assert -charge_step(currency) < settled.rounding <= 0
    # Nothing is both rounded away and carried; a carried amount is below the minimum.
    assert settled.carried_forward == 0 or (
        settled.rounding == 0 and settled.carried_forward < minimum_charge(currency)
    )
