"""Billing periods follow the billing-cycle anchor: contiguous, increasing, no drift."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

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


# --- the customer's calendar (issue 11, item 0) ---------------------------------------

ZONES = (
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Pacific/Kiritimati",  # UTC+14: its local date is a day ahead of UTC most of the day
    "Pacific/Pago_Pago",  # UTC-11: a day behind
    "UTC",
)
# From 2000: Kiritimati skipped the whole of 1994-12-31, a date no daily period can start on.
LOCAL_MIN = datetime(2000, 1, 1)  # noqa: DTZ001 -- hypothesis bounds are naive
LOCAL_MAX = datetime(2090, 12, 31, 23, 59, 59, 999999)  # noqa: DTZ001


@st.composite
def local_anchors(draw: st.DrawFn) -> tuple[str, datetime]:
    """(zone, anchor): a wall time that exists in the zone, often on day 28-31 or in the
    hours DST moves (01:00-03:59), handed over as the UTC instant kakin stores."""
    name = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(name)
    if draw(st.booleans()):
        year, month = draw(st.integers(2000, 2090)), draw(st.integers(1, 12))
        day = draw(st.integers(28, calendar.monthrange(year, month)[1]))
        hour = draw(st.sampled_from([0, 1, 2, 3, 8, 23]))
        wall = datetime(year, month, day, hour, draw(st.integers(0, 59)))  # noqa: DTZ001
        fold = draw(st.integers(0, 1))
        moment = wall.replace(tzinfo=tz, fold=fold)
        if not _exists(wall, tz):
            moment = draw(
                st.datetimes(LOCAL_MIN, LOCAL_MAX, timezones=st.just(tz), allow_imaginary=False)
            )
    else:
        moment = draw(
            st.datetimes(LOCAL_MIN, LOCAL_MAX, timezones=st.just(tz), allow_imaginary=False)
        )
    return name, moment.astimezone(UTC)


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether the naive local ``wall`` time happens in ``tz`` (not in a DST gap)."""
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def _assert_at_local_time(moment: datetime, wall: datetime, tz: ZoneInfo) -> None:
    """``moment`` is at the local wall time ``wall``, or DST-adjusted as documented:
    a repeated time is its first occurrence, a missing one moves forward by the gap."""
    local = moment.astimezone(tz).replace(tzinfo=None)
    if _exists(wall, tz):
        assert local == wall
        first, second = (wall.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
        assert moment == min(first, second), "a repeated hour: not its first occurrence"
    else:
        before = (wall - timedelta(days=1)).replace(tzinfo=tz).utcoffset()
        after = (wall + timedelta(days=1)).replace(tzinfo=tz).utcoffset()
        assert before is not None and after is not None
        assert local - wall == after - before > timedelta(0), "a DST gap: not moved by the gap"


@given(local_anchors(), st.integers(1, 24))
@example(("Asia/Tokyo", utc(2027, 1, 30, 23)), 3)  # 2027-01-31 08:00 JST: the case
@example(("Asia/Tokyo", utc(2027, 2, 28, 23)), 3)  # 2027-03-01 08:00 JST
@example(("America/Los_Angeles", utc(2027, 2, 14, 10, 30)), 2)  # 02:30 PST, then a gap
def test_every_local_month_has_exactly_one_renewal_on_the_anchor_day(
    anchored: tuple[str, datetime], months: int
) -> None:
    name, anchor = anchored
    tz = ZoneInfo(name)
    start = anchor.astimezone(tz)
    renewals = [boundary(anchor, Interval.MONTH, 1, i, time_zone=name) for i in range(months + 1)]
    local = [r.astimezone(tz) for r in renewals]
    # One renewal per local month: consecutive months, none skipped, none twice.
    assert [(d.year, d.month) for d in local] == [months_later(start, i) for i in range(months + 1)]
    for moment, when in zip(renewals[1:], local[1:], strict=True):
        last_day = calendar.monthrange(when.year, when.month)[1]
        assert when.day == min(start.day, last_day), "not the anchor day (or the month's end)"
        wall = datetime.combine(when.date(), start.time())
        _assert_at_local_time(moment, wall, tz)
    assert renewals[0] == anchor
    assert all(r.utcoffset() == timedelta(0) for r in renewals), "instants are UTC"


@given(local_anchors(), st.sampled_from([Interval.DAY, Interval.WEEK, Interval.YEAR]), counts)
def test_day_week_and_year_boundaries_keep_the_local_time(
    anchored: tuple[str, datetime], interval: Interval, count: int
) -> None:
    name, anchor = anchored
    tz = ZoneInfo(name)
    start = anchor.astimezone(tz)
    for index in range(1, 5):
        moment = boundary(anchor, interval, count, index, time_zone=name)
        if interval == Interval.YEAR:
            year = start.year + count * index
            day = min(start.day, calendar.monthrange(year, start.month)[1])
            date = start.date().replace(year=year, day=day)
        else:
            days = {Interval.DAY: 1, Interval.WEEK: 7}[interval] * count * index
            date = start.date() + timedelta(days=days)
        _assert_at_local_time(moment, datetime.combine(date, start.time()), tz)


@given(local_anchors(), intervals, counts, st.integers(0, 120))
def test_local_periods_are_contiguous_and_strictly_increasing(
    anchored: tuple[str, datetime], interval: Interval, count: int, index: int
) -> None:
    name, anchor = anchored
    this = period(anchor, interval, count, index, time_zone=name)
    following = period(anchor, interval, count, index + 1, time_zone=name)
    assert this.end == following.start
    assert this.start < this.end < following.end


@given(
    local_anchors(),
    intervals,
    counts,
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=366 * 10)),
)
def test_local_period_at_contains_the_moment(
    anchored: tuple[str, datetime], interval: Interval, count: int, offset: timedelta
) -> None:
    name, anchor = anchored
    found = period_at(anchor, interval, count, anchor + offset, time_zone=name)
    assert found.start <= anchor + offset < found.end
    assert found == period(anchor, interval, count, found.index, time_zone=name)


def test_tokyo_month_end_follows_the_local_date() -> None:
    """The issue's case: 2027-01-31 08:00 JST is 2027-01-30 23:00 UTC."""
    anchor = datetime(2027, 1, 31, 8, tzinfo=ZoneInfo("Asia/Tokyo"))
    renewals = [boundary(anchor, Interval.MONTH, 1, i, time_zone="Asia/Tokyo") for i in range(4)]
    assert renewals == [
        utc(2027, 1, 30, 23),  # 1月31日 08:00
        utc(2027, 2, 27, 23),  # 2月28日 08:00
        utc(2027, 3, 30, 23),  # 3月31日 08:00
        utc(2027, 4, 29, 23),  # 4月30日 08:00
    ]
    # On the UTC calendar the anchor is the 30th: no February renewal, then Mar 1...
    assert boundary(anchor, Interval.MONTH, 1, 1) == utc(2027, 2, 28, 23)  # 3月1日 JST
    first = datetime(2027, 3, 1, 8, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert boundary(first, Interval.MONTH, 1, 1, time_zone="Asia/Tokyo") == utc(2027, 3, 31, 23)
    assert boundary(first, Interval.MONTH, 1, 1) == utc(2027, 3, 28, 23)  # the 29th JST


def test_los_angeles_renewal_in_the_spring_gap_moves_forward_by_the_gap() -> None:
    la = ZoneInfo("America/Los_Angeles")
    anchor = datetime(2027, 2, 14, 2, 30, tzinfo=la)  # 02:30 PST
    gap, after = (
        boundary(anchor, Interval.MONTH, 1, i, time_zone="America/Los_Angeles") for i in (1, 2)
    )
    # 2027-03-14 02:30 does not exist in Los Angeles: 03:30 PDT (10:30 UTC, as 02:30 PST).
    assert gap == utc(2027, 3, 14, 10, 30)
    assert gap.astimezone(la).replace(tzinfo=None) == datetime(2027, 3, 14, 3, 30)  # noqa: DTZ001
    assert after.astimezone(la).replace(tzinfo=None) == datetime(2027, 4, 14, 2, 30)  # noqa: DTZ001
    # A monthly renewal keeps 09:00 local on both sides of DST (the UTC hour changes).
    nine = datetime(2027, 2, 20, 9, tzinfo=la)
    assert [
        boundary(nine, Interval.MONTH, 1, i, time_zone="America/Los_Angeles").hour for i in range(3)
    ] == [17, 16, 16]


def test_los_angeles_repeated_hour_is_its_first_occurrence() -> None:
    la = ZoneInfo("America/Los_Angeles")
    anchor = datetime(2026, 11, 1, 1, 30, tzinfo=la, fold=1)  # the second 01:30 (PST)
    # (Compared in UTC: Python never finds a time in the repeated hour equal across zones.)
    assert boundary(anchor, Interval.DAY, 1, 0, time_zone="America/Los_Angeles") == utc(
        2026, 11, 1, 9, 30
    )
    daily = datetime(2027, 11, 6, 1, 30, tzinfo=la)
    assert boundary(daily, Interval.DAY, 1, 1, time_zone="America/Los_Angeles") == utc(
        2027, 11, 7, 8, 30
    )  # 01:30 PDT, the first of the two


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        boundary(utc(2024, 1, 31), Interval.MONTH, 1, 1, time_zone="Asia/Edo")
