"""Trends of any per-bucket figure: growth, year over year, moving average.

- **Growth** against the previous bucket: ``(value - previous) / previous``.
- **Year over year**: the same against the bucket a year earlier on the reporting
  calendar: the same month, the same ISO week number of the previous ISO year, the
  same day (none for 29 February, nor for week 53 when the earlier year has 52). The
  earlier buckets must be in the series: ask for a range starting a year before.
- **Moving average** over ``window`` buckets, the current one included; ``None``
  until the series holds that many.

Growth is ``None`` where the earlier value is 0 or missing. Rates and averages
follow ``billing.analytics.ratios`` (four decimals, half-even, rounded once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from billing.analytics.buckets import Bucket, Granularity
from billing.analytics.ratios import rate_of, ratio

Value = int | Decimal


@dataclass(frozen=True)
class TrendPoint:
    bucket: Bucket
    value: Value
    growth: Decimal | None
    year_over_year: Decimal | None
    moving_average: Decimal | None


def growth(value: Value, earlier: Value | None) -> Decimal | None:
    """``(value - earlier) / earlier``, or ``None`` if there is no earlier value or it is 0."""
    if earlier is None:
        return None
    return ratio(Fraction(value) - Fraction(earlier), Fraction(earlier))


def year_earlier_label(label: str, interval: Granularity | str) -> str | None:
    """The label of the bucket a year before ``label`` (``None`` if it has no twin)."""
    granularity = Granularity(interval)
    if granularity is Granularity.MONTH:
        year, month = label.split("-")
        return f"{int(year) - 1}-{month}"
    if granularity is Granularity.WEEK:
        year, week = label.split("-W")
        try:
            date.fromisocalendar(int(year) - 1, int(week), 1)
        except ValueError:
            return None
        return f"{int(year) - 1}-W{week}"
    day = date.fromisoformat(label)
    try:
        return day.replace(year=day.year - 1).isoformat()
    except ValueError:  # 29 February
        return None


def trend(
    series: Sequence[tuple[Bucket, Value]], *, interval: Granularity | str, window: int = 3
) -> tuple[TrendPoint, ...]:
    """Growth, year-over-year growth and moving average of each point of ``series``.

    Args:
        series: ``(bucket, value)`` in bucket order, contiguous (one currency).
        interval: The buckets' granularity (for the year-earlier twin).
        window: How many buckets the moving average spans.
    """
    if window < 1:
        raise ValueError("the moving-average window must be at least 1 bucket")
    by_label = {bucket.label: value for bucket, value in series}
    points = []
    for index, (bucket, value) in enumerate(series):
        previous = series[index - 1][1] if index else None
        twin = year_earlier_label(bucket.label, interval)
        average = None
        if index + 1 >= window:
            span = [Fraction(v) for _, v in series[index + 1 - window : index + 1]]
            average = rate_of(sum(span, Fraction(0)) / window)
        points.append(
            TrendPoint(
                bucket=bucket,
                value=value,
                growth=growth(value, previous),
                year_over_year=growth(value, by_label.get(twin) if twin else None),
                moving_average=average,
            )
        )
    return tuple(points)
