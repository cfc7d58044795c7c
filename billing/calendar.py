"""Billing periods that follow the billing-cycle anchor.

Every boundary is computed from the anchor and the period's index, never from the
previous boundary, so clamping (Jan 31 -> Feb 28) never makes later periods drift:
a monthly subscription anchored on Jan 31 renews Feb 28 (29 in leap years), Mar 31,
Apr 30, May 31. All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True)
class Period:
    """A half-open billing period ``[start, end)``; ``index`` 0 is the first one."""

    index: int
    start: datetime
    end: datetime


def _require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("billing datetimes must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    last_day = _calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def boundary(anchor: datetime, interval: Interval, count: int, index: int) -> datetime:
    """The start of period ``index``: the anchor moved ``index * count`` intervals."""
    if count < 1:
        raise ValueError("interval count must be at least 1")
    if index < 0:
        raise ValueError("period index must not be negative")
    anchor = _require_utc(anchor)
    steps = index * count
    match Interval(interval):
        case Interval.DAY:
            return anchor + timedelta(days=steps)
        case Interval.WEEK:
            return anchor + timedelta(weeks=steps)
        case Interval.MONTH:
            return _add_months(anchor, steps)
        case Interval.YEAR:
            return _add_months(anchor, 12 * steps)
    raise AssertionError(f"unhandled interval {interval}")  # pragma: no cover


def period(anchor: datetime, interval: Interval, count: int, index: int) -> Period:
    """Period ``index`` of a subscription anchored at ``anchor``."""
    return Period(
        index=index,
        start=boundary(anchor, interval, count, index),
        end=boundary(anchor, interval, count, index + 1),
    )


_AVERAGE_DAYS = {
    Interval.DAY: 1.0,
    Interval.WEEK: 7.0,
    Interval.MONTH: 30.436875,
    Interval.YEAR: 365.2425,
}


def period_at(anchor: datetime, interval: Interval, count: int, moment: datetime) -> Period:
    """The period that contains ``moment`` (which must not be before the anchor)."""
    if count < 1:
        raise ValueError("interval count must be at least 1")
    anchor = _require_utc(anchor)
    moment = _require_utc(moment)
    if moment < anchor:
        raise ValueError("moment is before the billing-cycle anchor")
    # Estimate the index from the average interval length, then walk to the exact one.
    average = {
        Interval.DAY: 1,
        Interval.WEEK: 7,
        Interval.MONTH: 30.436875,
        Interval.YEAR: 365.2425,
    }
    guess = int((moment - anchor).total_seconds() / 86400 / (average[Interval(interval)] * count))
    index = max(guess - 1, 0)
    while boundary(anchor, interval, count, index + 1) <= moment:
        index += 1
    while index > 0 and boundary(anchor, interval, count, index) > moment:
        index -= 1
    return period(anchor, interval, count, index)
