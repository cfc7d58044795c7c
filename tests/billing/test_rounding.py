"""Exact rounding and largest-remainder allocation."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.rounding import RoundingMode, allocate, parse_decimal, round_fraction


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [
        (Fraction(315, 10), RoundingMode.DOWN, 31),
        (Fraction(315, 10), RoundingMode.UP, 32),
        (Fraction(315, 10), RoundingMode.HALF_UP, 32),
        (Fraction(315, 10), RoundingMode.HALF_EVEN, 32),
        (Fraction(305, 10), RoundingMode.HALF_EVEN, 30),
        (Fraction(305, 10), RoundingMode.HALF_UP, 31),
        (Fraction(314, 10), RoundingMode.HALF_UP, 31),
        (Fraction(311, 10), RoundingMode.UP, 32),
        (Fraction(319, 10), RoundingMode.DOWN, 31),
        (Fraction(-319, 10), RoundingMode.DOWN, -31),
        (Fraction(-311, 10), RoundingMode.UP, -32),
        (Fraction(-305, 10), RoundingMode.HALF_UP, -31),
        (Fraction(-305, 10), RoundingMode.HALF_EVEN, -30),
        (Fraction(7), RoundingMode.UP, 7),
        (Fraction(1, 3), RoundingMode.HALF_EVEN, 0),
    ],
)
def test_rounding_modes(value: Fraction, mode: RoundingMode, expected: int) -> None:
    assert round_fraction(value, mode) == expected


@given(st.fractions(), st.sampled_from(list(RoundingMode)))
def test_rounding_is_within_one_and_symmetric(value: Fraction, mode: RoundingMode) -> None:
    rounded = round_fraction(value, mode)
    assert abs(rounded - value) < 1
    assert round_fraction(-value, mode) == -rounded
    if mode is RoundingMode.HALF_EVEN:
        assert rounded == round(value)


@pytest.mark.parametrize("value", [0.1, True, None, [1]])
def test_parse_decimal_refuses_floats_and_non_numbers(value: object) -> None:
    with pytest.raises(TypeError, match="unit_amount"):
        parse_decimal(value, what="unit_amount")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", ""])
def test_parse_decimal_refuses_non_finite_text(value: str) -> None:
    with pytest.raises(ValueError, match="unit_amount"):
        parse_decimal(value, what="unit_amount")


def test_parse_decimal_keeps_the_digits() -> None:
    assert parse_decimal("0.015", what="x") == Decimal("0.015")
    assert parse_decimal(3, what="x") == Decimal(3)


def test_allocation_examples() -> None:
    assert allocate(100, [1, 1, 1]) == (34, 33, 33)
    assert allocate(-100, [1, 1, 1]) == (-34, -33, -33)
    assert allocate(10, [0, 5, 5]) == (0, 5, 5)
    assert allocate(0, [0, 0]) == (0, 0)
    assert allocate(1, [Fraction(1, 3), Fraction(2, 3)]) == (0, 1)


def test_allocation_refuses_negative_weights_and_nothing_to_weigh() -> None:
    with pytest.raises(ValueError, match="negative"):
        allocate(10, [1, -1])
    with pytest.raises(ValueError, match="all weights are zero"):
        allocate(10, [0, 0])


@given(
    st.integers(-(10**12), 10**12),
    st.lists(st.integers(0, 10**9), min_size=1, max_size=8).filter(any),
)
def test_allocation_adds_up_and_stays_within_one_unit(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert isinstance(part, int)
        assert abs(part - Fraction(total * weight, whole)) < 1
        if weight == 0:
            assert part == 0
