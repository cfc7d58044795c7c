"""Report buckets: days, ISO weeks (Monday) or months on the seller's reporting calendar.

A bucket is a half-open interval ``[start, end)`` of UTC instants whose ends are
local midnights in the reporting time zone (an IANA name, ``zoneinfo``): an entry
booked at 2027-01-31T15:30Z is in February in Asia/Tokyo (2027-02-01 00:30 JST). A
local midnight that a DST change skips is read as the day's first instant (the
offset before the gap, ``fold=0``, as ``billing.calendar`` does).

A range ``[from, to)`` is covered by the buckets from the one holding ``from`` to the
one holding the last instant before ``to``, so the first and last bucket are whole.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum

from billing.calendar import zone

MAX_BUCKETS = 1000


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class RangeError(ValueError):
    """A report range that cannot be answered; ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Bucket:
    """One report bucket ``[start, end)`` in UTC, labelled on the local calendar.

    Attributes:
        start: The first instant (a local midnight), UTC.
        end: The first instant of the next bucket, UTC.
        label: ``2027-02-28`` (day), ``2027-W05`` (ISO week), ``2027-02`` (month).
    """

    start: datetime
    end: datetime
    label: str

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _first_day(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    return day


def _next_day(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return day + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _label(day: date, granularity: Granularity) -> str:
    if granularity is Granularity.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity is Granularity.MONTH:
        return f"{day.year}-{day.month:02d}"
    return day.isoformat()


def _instant(value: date | datetime, tz: tzinfo, name: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RangeError(name, f"{name} must carry a UTC offset (e.g. 2027-01-01T00:00Z)")
        return value.astimezone(UTC)
    if isinstance(value, date):  # a calendar date: its local midnight
        return _midnight(value, tz)
    raise RangeError(name, f"{name} must be a date or a datetime")


def bucket_range(
    *,
    from_: date | datetime,
    to: date | datetime,
    interval: Granularity | str,
    time_zone: str = "",
) -> tuple[Bucket, ...]:
    """The buckets covering ``[from_, to)`` on the reporting calendar.

    Args:
        from_: The start of the range: an aware datetime, or a date (its local midnight).
        to: The end of the range (exclusive), likewise.
        interval: ``day``, ``week`` or ``month``.
        time_zone: The reporting time zone; ``""`` is UTC.

    Raises:
        RangeError: naming ``interval``, ``time_zone``, ``from`` or ``to``: an
            unknown interval or zone, ``to`` not after ``from``, or more than
            ``MAX_BUCKETS`` buckets.
    """
    try:
        granularity = Granularity(interval)
    except ValueError:
        raise RangeError("interval", "interval must be day, week or month") from None
    try:
        tz = zone(time_zone)
    except ValueError as error:
        raise RangeError("time_zone", str(error)) from None
    start = _instant(from_, tz, "from")
    end = _instant(to, tz, "to")
    if end <= start:
        raise RangeError("to", "to must be after from")
    too_many = RangeError(
        "to", f"the range holds more than {MAX_BUCKETS:,} {granularity} buckets: "
        "ask for a shorter range or a longer interval"
    )  # fmt: skip
    # A cheap bound first, so a range of centuries is refused without walking it: even
    # at the longest a bucket can be (a DST day of 25 hours, a 31-day month) the range
    # holds more.
    longest = {Granularity.DAY: 1.05, Granularity.WEEK: 7.05, Granularity.MONTH: 31.05}
    if (end - start) / timedelta(days=longest[granularity]) > MAX_BUCKETS + 2:
        raise too_many
    day = _first_day(start.astimezone(tz).date(), granularity)
    buckets: list[Bucket] = []
    lower = _midnight(day, tz)
    while lower < end:
        following = _next_day(day, granularity)
        upper = _midnight(following, tz)
        buckets.append(Bucket(start=lower, end=upper, label=_label(day, granularity)))
        if len(buckets) > MAX_BUCKETS:
            raise too_many
        day, lower = following, upper
    return tuple(buckets)


def bucket_locator(buckets: Sequence[Bucket]) -> Callable[[datetime], int | None]:
    """A function giving the index of the bucket holding a moment, ``None`` outside."""
    starts = [b.start for b in buckets]
    first = buckets[0].start if buckets else None
    last = buckets[-1].end if buckets else None

    def locate(moment: datetime) -> int | None:
        if first is None or last is None or moment < first or moment >= last:
            return None
        return bisect_right(starts, moment) - 1

    return locate
