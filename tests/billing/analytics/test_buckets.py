"""Report buckets on the reporting calendar, half-open, validated with the field named."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from billing.analytics.buckets import RangeError, bucket_locator, bucket_range
from tests.billing.analytics.ledger_builder import utc


def test_an_invoice_at_month_end_utc_is_february_in_tokyo() -> None:
    buckets = bucket_range(from_=date(2027, 1, 1), to=date(2027, 3, 1), interval="month",
                           time_zone="Asia/Tokyo")  # fmt: skip
    assert [b.label for b in buckets] == ["2027-01", "2027-02"]
    # Tokyo midnight is 15:00 UTC the day before.
    assert buckets[1].start == datetime(2027, 1, 31, 15, tzinfo=UTC)
    locate = bucket_locator(buckets)
    assert locate(datetime(2027, 1, 31, 15, 30, tzinfo=UTC)) == 1  # 00:30 JST on Feb 1
    assert locate(datetime(2027, 1, 31, 14, 59, tzinfo=UTC)) == 0
    assert locate(datetime(2027, 2, 28, 15, tzinfo=UTC)) is None  # March: past the end
    assert bucket_range(from_=utc(1), to=utc(3), interval="month")[1].start == utc(2)


def test_weeks_start_on_monday_and_cover_the_range_whole() -> None:
    # 2027-01-06 is a Wednesday: the first bucket is the ISO week from Monday 01-04.
    weeks = bucket_range(from_=date(2027, 1, 6), to=date(2027, 1, 19), interval="week")
    assert [(b.label, b.start.date()) for b in weeks] == [
        ("2027-W01", date(2027, 1, 4)),
        ("2027-W02", date(2027, 1, 11)),
        ("2027-W03", date(2027, 1, 18)),
    ]
    assert all(a.end == b.start for a, b in pairwise(weeks))


def test_days_follow_dst_in_the_reporting_zone() -> None:
    days = bucket_range(from_=date(2027, 3, 14), to=date(2027, 3, 16), interval="day",
                        time_zone="America/Los_Angeles")  # fmt: skip
    # The spring-forward day has 23 hours: 08:00Z (PST) to 07:00Z the next day (PDT).
    assert days[0].start == datetime(2027, 3, 14, 8, tzinfo=UTC)
    assert days[0].end - days[0].start == timedelta(hours=23)
    assert days[1].label == "2027-03-15"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"from_": utc(3), "to": utc(1)}, "to"),
        ({"from_": utc(3), "to": utc(3)}, "to"),
        ({"from_": utc(1), "to": utc(1, year=2030)}, "to"),  # 1,096 days
        ({"from_": utc(1), "to": utc(1, year=3027)}, "to"),
        ({"from_": datetime(2027, 1, 1), "to": utc(3)}, "from"),  # noqa: DTZ001 -- naive on purpose
        ({"from_": utc(1), "to": utc(3), "interval": "year"}, "interval"),
        ({"from_": utc(1), "to": utc(3), "time_zone": "Mars/Olympus"}, "time_zone"),
    ],
)
def test_bad_ranges_name_the_field(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"interval": "day"} | kwargs
    with pytest.raises(RangeError) as raised:
        bucket_range(**arguments)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_a_thousand_buckets_is_the_limit() -> None:
    assert len(bucket_range(from_=date(2027, 1, 1), to=date(2029, 9, 27), interval="day")) == 1000
    with pytest.raises(RangeError, match="1,000"):
        bucket_range(from_=date(2027, 1, 1), to=date(2029, 9, 28), interval="day")
