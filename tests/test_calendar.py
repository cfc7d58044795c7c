"""Billing periods follow the billing-cycle anchor: contiguous, increasing, no drift."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from billing.calendar import Interval, Period, boundary, period, period_at

MIN = datetime(1970, 1, 1)  # noqa: DTZ001 -- hypothesis bounds are naive; tz is added
MAX = datetime(2100, 12, 31, 23, 59, 59, 999999)  # noqa: DTZ001


@st.composite
def month_end_anchors(draw: st.DrawFn) -> datetime:
    """Anchors on day 28-31 of a month, where clamping happens, at any time of day."""
    year = draw(st.integers(1970, 2100))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(28, calendar.monthrange(year, month)[1]))
    moment = draw(st.times())
    return datetime.combine(datetime(year, month, day).date(), moment, tzinfo=UTC)  # noqa: DTZ001


anchors = st.one_of(
    st.datetimes(min_value=MIN, max_value=MAX, timezones=st.just(UTC)),
    month_end_anchors(),
)
intervals = st.sampled_from(list(Interval))
counts = st.integers(1, 12)
indexes = st.integers(0, 400)


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def months_later(anchor: datetime, months: int) -> tuple[int, int]:
    """(year, month) ``months`` calendar months after the anchor's, computed independently."""
    year = anchor.year + (anchor.month - 1 + months) // 12
    month = (anchor.month - 1 + months) % 12 + 1
    return year, month


# --- properties --------------------------------------------------------------------


@given(anchors, intervals, counts, indexes)
def test_periods_are_contiguous_and_strictly_increasing(
    anchor: datetime, interval: Interval, count: int, index: int
) -> None:
    this = period(anchor, interval, count, index)
    following = period(anchor, interval, count, index + 1)
    assert (this.index, following.index) == (index, index + 1)
    assert this.end == following.start, "a gap or an overlap between periods"
    assert this.start < this.end < following.end
    assert this.start == boundary(anchor, interval, count, index)
    assert this.start.tzinfo is not None and this.start.utcoffset() == timedelta(0)


@given(anchors, intervals, counts)
def test_the_first_period_starts_at_the_anchor(
    anchor: datetime, interval: Interval, count: int
) -> None:
    assert boundary(anchor, interval, count, 0) == anchor
    assert period(anchor, interval, count, 0).start == anchor


@given(anchors, counts, indexes)
def test_monthly_boundaries_never_drift_from_the_anchor_day(
    anchor: datetime, count: int, index: int
) -> None:
    moment = boundary(anchor, Interval.MONTH, count, index)
    year, month = months_later(anchor, count * index)
    last_day = calendar.monthrange(year, month)[1]
    assert (moment.year, moment.month) == (year, month)
    assert moment.day == min(anchor.day, last_day)
    assert moment.timetz() == anchor.timetz()


@given(anchors, counts, st.integers(0, 400))
def test_yearly_boundaries_keep_month_day_and_time(
    anchor: datetime, count: int, index: int
) -> None:
    moment = boundary(anchor, Interval.YEAR, count, index)
    year = anchor.year + count * index
    assert (moment.year, moment.month) == (year, anchor.month)
    assert moment.day == min(anchor.day, calendar.monthrange(year, anchor.month)[1])
    assert moment.timetz() == anchor.timetz()


@given(anchors, st.sampled_from([Interval.DAY, Interval.WEEK]), counts, indexes)
def test_daily_and_weekly_boundaries_are_exact_multiples(
    anchor: datetime, interval: Interval, count: int, index: int
) -> None:
    days = {Interval.DAY: 1, Interval.WEEK: 7}[interval]
    assert boundary(anchor, interval, count, index) - anchor == timedelta(days=days * count * index)


@given(
    anchors,
    intervals,
    counts,
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=366 * 60)),
)
def test_period_at_contains_the_moment(
    anchor: datetime, interval: Interval, count: int, offset: timedelta
) -> None:
    moment = anchor + offset
    found = period_at(anchor, interval, count, moment)
    assert found.start <= moment < found.end
    assert found == period(anchor, interval, count, found.index)


@given(anchors, intervals, counts, st.integers(0, 200))
def test_period_at_a_boundary_is_the_period_that_starts_there(
    anchor: datetime, interval: Interval, count: int, index: int
) -> None:
    """Periods are half-open: a renewal moment belongs to the new period."""
    start = boundary(anchor, interval, count, index)
    assert period_at(anchor, interval, count, start).index == index
    just_before = start - timedelta(microseconds=1)
    if just_before >= anchor:
        assert period_at(anchor, interval, count, just_before).index == index - 1


@given(anchors, intervals, counts, indexes)
def test_interval_given_as_a_string_is_accepted(
    anchor: datetime, interval: Interval, count: int, index: int
) -> None:
    assert boundary(anchor, interval.value, count, index) == boundary(  # type: ignore[arg-type]
        anchor, interval, count, index
    )


@given(st.datetimes(min_value=MIN, max_value=datetime(2100, 1, 1)), intervals, counts)  # noqa: DTZ001
def test_aware_anchors_in_other_zones_are_converted_to_utc(
    naive: datetime, interval: Interval, count: int
) -> None:
    jst = timezone(timedelta(hours=9))
    anchor = naive.replace(tzinfo=jst)
    assert boundary(anchor, interval, count, 1) == boundary(
        anchor.astimezone(UTC), interval, count, 1
    )
    assert boundary(anchor, interval, count, 1).tzinfo == UTC


# --- the examples from the design notes --------------------------------------------


def test_jan_31_2024_monthly_renewals() -> None:
    anchor = utc(2024, 1, 31, 9, 30)
    renewals = [boundary(anchor, Interval.MONTH, 1, i) for i in range(5)]
    assert renewals == [
        utc(2024, 1, 31, 9, 30),
        utc(2024, 2, 29, 9, 30),
        utc(2024, 3, 31, 9, 30),
        utc(2024, 4, 30, 9, 30),
        utc(2024, 5, 31, 9, 30),
    ]
    assert period(anchor, Interval.MONTH, 1, 1) == Period(
        index=1, start=utc(2024, 2, 29, 9, 30), end=utc(2024, 3, 31, 9, 30)
    )


def test_jan_31_2023_renews_feb_28() -> None:
    anchor = utc(2023, 1, 31)
    assert boundary(anchor, Interval.MONTH, 1, 1) == utc(2023, 2, 28)
    assert boundary(anchor, Interval.MONTH, 1, 2) == utc(2023, 3, 31)


def test_quarterly_from_nov_30() -> None:
    anchor = utc(2023, 11, 30)
    assert [boundary(anchor, Interval.MONTH, 3, i) for i in range(4)] == [
        utc(2023, 11, 30),
        utc(2024, 2, 29),
        utc(2024, 5, 30),
        utc(2024, 8, 30),
    ]


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, utc(2024, 2, 29, 12)),
        (1, utc(2025, 2, 28, 12)),
        (2, utc(2026, 2, 28, 12)),
        (3, utc(2027, 2, 28, 12)),
        (4, utc(2028, 2, 29, 12)),
        (76, utc(2100, 2, 28, 12)),  # 2100 is not a leap year
        (376, utc(2400, 2, 29, 12)),  # 2400 is
    ],
)
def test_yearly_feb_29_anchor(index: int, expected: datetime) -> None:
    assert boundary(utc(2024, 2, 29, 12), Interval.YEAR, 1, index) == expected


@given(st.integers(0, 400).filter(lambda i: i % 4 == 0))
@example(0)
def test_every_fourth_year_of_a_feb_29_anchor_lands_on_feb_29_when_leap(index: int) -> None:
    moment = boundary(utc(2000, 2, 29), Interval.YEAR, 1, index)
    expected_day = 29 if calendar.isleap(moment.year) else 28
    assert (moment.month, moment.day) == (2, expected_day)


def test_period_at_end_of_february() -> None:
    anchor = utc(2024, 1, 31)
    found = period_at(anchor, Interval.MONTH, 1, utc(2024, 3, 15))
    assert found == Period(index=1, start=utc(2024, 2, 29), end=utc(2024, 3, 31))


# --- invalid input -------------------------------------------------------------------


NAIVE = datetime(2024, 1, 31)  # noqa: DTZ001 -- deliberately naive


@pytest.mark.parametrize(
    "call",
    [
        lambda: boundary(NAIVE, Interval.MONTH, 1, 1),
        lambda: period(NAIVE, Interval.MONTH, 1, 0),
        lambda: period_at(NAIVE, Interval.MONTH, 1, utc(2024, 3, 1)),
        lambda: period_at(utc(2024, 1, 31), Interval.MONTH, 1, NAIVE.replace(month=3)),
    ],
    ids=["boundary", "period", "period_at anchor", "period_at moment"],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize("count", [0, -1])
def test_interval_count_must_be_positive(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        boundary(utc(2024, 1, 31), Interval.MONTH, count, 1)
    with pytest.raises(ValueError, match="count"):
        period(utc(2024, 1, 31), Interval.MONTH, count, 0)
    with pytest.raises(ValueError, match="count"):
        period_at(utc(2024, 1, 31), Interval.MONTH, count, utc(2024, 3, 1))


def test_negative_index_is_refused() -> None:
    with pytest.raises(ValueError, match="index"):
        boundary(utc(2024, 1, 31), Interval.MONTH, 1, -1)


def test_moment_before_the_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        period_at(utc(2024, 1, 31), Interval.MONTH, 1, utc(2024, 1, 30, 23, 59))


def test_unknown_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        boundary(utc(2024, 1, 31), "fortnight", 1, 1)  # type: ignore[arg-type]


def test_time_of_day_is_kept_exactly() -> None:
    anchor = datetime.combine(datetime(2024, 1, 31).date(), time(23, 59, 59, 999999), UTC)  # noqa: DTZ001
    assert boundary(anchor, Interval.MONTH, 1, 1) == utc(2024, 2, 29, 23, 59, 59, 999999)
