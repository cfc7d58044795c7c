"""Billing periods that follow the billing-cycle anchor, on the customer's calendar.

Every boundary is computed from the anchor and the period's index, never from the
previous boundary, so clamping (Jan 31 -> Feb 28) never makes later periods drift:
a monthly subscription anchored on Jan 31 renews Feb 28 (29 in leap years), Mar 31,
Apr 30, May 31.

**Whose calendar.** The anchor's day of month, the clamping to the end of a shorter
month and the renewal's time of day are those of the anchor in ``time_zone`` (an
IANA name, ``zoneinfo``; empty or ``"UTC"`` is UTC). A Tokyo subscription anchored at
2027-01-31 08:00 JST (2027-01-30 23:00 UTC) renews 2027-02-28 08:00 JST and
2027-03-31 08:00 JST, not on the UTC dates Feb 28 and Mar 30. Day and week intervals
step whole local days too, so a daily renewal keeps its local time across DST. The
arithmetic is done on the local wall clock; every datetime handed in or out is an
aware instant, and what comes out is UTC (instants are stored in UTC).

**DST.** A boundary whose local wall time does not exist that day (it falls in a
spring-forward gap, e.g. 02:30 on 2027-03-14 in America/Los_Angeles) is read with the
offset in force before the gap, ``zoneinfo``'s ``fold=0``: it moves forward by the
length of the gap (02:30 PST is 03:30 PDT) and the next boundary is back at 02:30. A
wall time that happens twice (fall-back, 01:30 on 2027-11-07) is its first occurrence
(``fold=0`` too, the earlier instant). Period 0 starts at the anchor itself, whichever
occurrence it was. A local date a zone skipped altogether (Pacific/Kiritimati
1994-12-31) has no boundary of its own: a daily period starting on it would be empty.
The zone rules are those of the tz database installed (``tzdata``); an amendment
changes boundaries computed after it, never ones already billed.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


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


def zone(time_zone: str = "") -> tzinfo:
    """The ``tzinfo`` of an IANA zone name; ``""`` and ``"UTC"`` are UTC.

    Raises:
        ValueError: for a name the tz database does not know.
    """
    if not time_zone or time_zone == "UTC":
        return UTC
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {time_zone!r}") from None


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    last_day = _calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def boundary(
    anchor: datetime, interval: Interval, count: int, index: int, *, time_zone: str = ""
) -> datetime:
    """The start of period ``index``: the anchor moved ``index * count`` intervals on
    the local calendar of ``time_zone`` (see the module docstring for DST)."""
    if count < 1:
        raise ValueError("interval count must be at least 1")
    if index < 0:
        raise ValueError("period index must not be negative")
    anchor = _require_utc(anchor)
    interval = Interval(interval)
    local_zone = zone(time_zone)
    if index == 0:
        return anchor  # as given: an anchor in a repeated hour keeps its occurrence
    # The local wall clock, naive: arithmetic on it keeps the local day and time.
    wall = anchor.astimezone(local_zone).replace(tzinfo=None)
    steps = index * count
    match interval:
        case Interval.DAY:
            wall += timedelta(days=steps)
        case Interval.WEEK:
            wall += timedelta(weeks=steps)
        case Interval.MONTH:
            wall = _add_months(wall, steps)
        case Interval.YEAR:
            wall = _add_months(wall, 12 * steps)
    # fold=0: a repeated wall time is its first occurrence, a missing one is read
    # with the offset before the gap (it moves forward by the gap).
    return wall.replace(tzinfo=local_zone, fold=0).astimezone(UTC)


def period(
    anchor: datetime, interval: Interval, count: int, index: int, *, time_zone: str = ""
) -> Period:
    """Period ``index`` of a subscription anchored at ``anchor``."""
    return Period(
        index=index,
        start=boundary(anchor, interval, count, index, time_zone=time_zone),
        end=boundary(anchor, interval, count, index + 1, time_zone=time_zone),
    )


_AVERAGE_DAYS = {
    Interval.DAY: 1.0,
    Interval.WEEK: 7.0,
    Interval.MONTH: 30.436875,
    Interval.YEAR: 365.2425,
}


def period_at(
    anchor: datetime, interval: Interval, count: int, moment: datetime, *, time_zone: str = ""
) -> Period:
    """The period that contains ``moment`` (which must not be before the anchor)."""
    if count < 1:
        raise ValueError("interval count must be at least 1")
    anchor = _require_utc(anchor)
    moment = _require_utc(moment)
    if moment < anchor:
        raise ValueError("moment is before the billing-cycle anchor")

    def start(index: int) -> datetime:
        return boundary(anchor, interval, count, index, time_zone=time_zone)

    # Estimate the index from the average interval length, then walk to the exact one.
    average = _AVERAGE_DAYS[Interval(interval)]
    guess = int((moment - anchor).total_seconds() / 86400 / (average * count))
    index = max(guess - 1, 0)
    while start(index + 1) <= moment:
        index += 1
    while index > 0 and start(index) > moment:
        index -= 1
    return period(anchor, interval, count, index, time_zone=time_zone)
