"""Proration of a mid-period plan change: exact, bounded, and adding up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.proration import prorate

FEB_START = datetime(2027, 1, 31, 9, tzinfo=UTC)
FEB_END = datetime(2027, 2, 28, 9, tzinfo=UTC)

amounts = st.integers(min_value=0, max_value=10**12)
starts = st.datetimes(
    # hypothesis wants naive bounds; timezones= makes the drawn values aware UTC.
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2090, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
lengths = st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=366))


@st.composite
def periods(draw: st.DrawFn) -> tuple[datetime, datetime, datetime]:
    start = draw(starts)
    end = start + draw(lengths)
    micros = (end - start) // timedelta(microseconds=1)
    at = start + timedelta(microseconds=draw(st.integers(min_value=0, max_value=micros)))
    return start, end, at


def test_half_way_through_an_upgrade_costs_half_the_difference() -> None:
    middle = FEB_START + (FEB_END - FEB_START) / 2
    result = prorate(
        old_amount=3000, new_amount=9800, period_start=FEB_START, period_end=FEB_END, at=middle
    )
    assert (result.credit, result.charge, result.net) == (1500, 4900, 3400)


def test_february_is_measured_in_its_own_days() -> None:
    # 7 of February's 28 days left: a quarter, not 7/30 or 7/31.
    at = FEB_END - timedelta(days=7)
    result = prorate(
        old_amount=0, new_amount=2800, period_start=FEB_START, period_end=FEB_END, at=at
    )
    assert result.charge == 700


def test_rounding_is_half_even_once_per_amount() -> None:
    # A third of 100 yen is 33.33..., of 5 yen 1.66...: 33 and 2.
    at = FEB_END - (FEB_END - FEB_START) / 3
    result = prorate(
        old_amount=5, new_amount=100, period_start=FEB_START, period_end=FEB_END, at=at
    )
    assert (result.credit, result.charge, result.net) == (2, 33, 31)


@given(periods(), amounts, amounts)
def test_lines_add_up_and_stay_within_the_prices(
    period: tuple[datetime, datetime, datetime], old: int, new: int
) -> None:
    start, end, at = period
    result = prorate(old_amount=old, new_amount=new, period_start=start, period_end=end, at=at)
    assert all(isinstance(v, int) for v in (result.credit, result.charge, result.net))
    assert result.net == result.charge - result.credit
    assert 0 <= result.credit <= old and 0 <= result.charge <= new
    assert 0 <= result.remaining <= 1


@given(periods(), amounts, amounts)
def test_switching_back_is_the_exact_opposite(
    period: tuple[datetime, datetime, datetime], old: int, new: int
) -> None:
    start, end, at = period
    there = prorate(old_amount=old, new_amount=new, period_start=start, period_end=end, at=at)
    back = prorate(old_amount=new, new_amount=old, period_start=start, period_end=end, at=at)
    assert there.net == -back.net


@given(periods(), amounts)
def test_same_price_costs_nothing_and_the_ends_are_whole(
    period: tuple[datetime, datetime, datetime], amount: int
) -> None:
    start, end, at = period
    same = prorate(old_amount=amount, new_amount=amount, period_start=start, period_end=end, at=at)
    assert same.net == 0
    whole = prorate(old_amount=0, new_amount=amount, period_start=start, period_end=end, at=start)
    none = prorate(old_amount=amount, new_amount=0, period_start=start, period_end=end, at=end)
    assert whole.charge == amount and (none.credit, none.net) == (0, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"at": FEB_END + timedelta(seconds=1)}, "inside the current period"),
        ({"period_end": FEB_START}, "end after it starts"),
        ({"old_amount": -1}, "non-negative integers"),
        ({"new_amount": 1.5}, "non-negative integers"),
        ({"at": datetime(2027, 2, 10)}, "timezone-aware"),  # noqa: DTZ001 -- on purpose
    ],
)
def test_bad_input_is_refused_with_a_reason(change: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "old_amount": 100, "new_amount": 200,
        "period_start": FEB_START, "period_end": FEB_END, "at": FEB_START + timedelta(days=1),
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        prorate(**arguments | change)  # type: ignore[arg-type]
