"""Trends (growth, year over year, moving average) and the forecast, hand-checked."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.analytics.buckets import bucket_range
from billing.analytics.forecast import SubscriptionOutlook, forecast
from billing.analytics.receivables import OpenInvoice
from billing.analytics.trends import growth, trend, year_earlier_label
from billing.calendar import Interval
from tests.billing.analytics.ledger_builder import utc


def test_growth_year_over_year_and_moving_average() -> None:
    months = bucket_range(from_=date(2026, 1, 1), to=date(2027, 4, 1), interval="month")
    values = [1000 + 100 * i for i in range(len(months))]  # 1,000 in 2026-01 ... 2,400
    points = trend(list(zip(months, values, strict=True)), interval="month", window=3)
    march = points[-1]
    assert (march.bucket.label, march.value) == ("2027-03", 2400)
    assert march.growth == Decimal("0.0435")  # (2,400 - 2,300) / 2,300 = 0.043478...
    assert march.year_over_year == Decimal(1)  # (2,400 - 1,200) / 1,200 (2026-03)
    assert march.moving_average == Decimal(2300)  # (2,200 + 2,300 + 2,400) / 3
    assert points[0].growth is None and points[0].year_over_year is None
    assert points[1].moving_average is None  # fewer than 3 buckets yet
    assert growth(5, 0) is None and growth(0, 4) == Decimal(-1)


@pytest.mark.parametrize(
    ("label", "interval", "twin"),
    [("2027-03", "month", "2026-03"), ("2027-W05", "week", "2026-W05"),
     ("2026-W53", "week", None), ("2027-03-01", "day", "2026-03-01"),
     ("2028-02-29", "day", None)],
)  # fmt: skip
def test_year_earlier_twin(label: str, interval: str, twin: str | None) -> None:
    assert year_earlier_label(label, interval) == twin


def test_forecast_hand_worked() -> None:
    subscriptions = [
        # Monthly 3,000 JPY from Jan 15: invoices Mar 15 and Apr 15, usage 10 JPY/day in
        # arrears: 28 days (Feb 15 - Mar 15) = 280, then 31 days = 310.
        SubscriptionOutlook(subscription_id="s1", customer_id="c1", currency="JPY",
                            anchor=utc(1, 15), interval=Interval.MONTH, next_period_index=2,
                            next_invoice_amount=3000, metered_per_day=Decimal(10)),
        # Weekly 1,000 JPY from Monday Mar 1: Mar 15, 22, 29; Apr 5, 12; canceled from Apr 19.
        SubscriptionOutlook(subscription_id="s2", customer_id="c2", currency="JPY",
                            anchor=utc(3, 1), interval=Interval.WEEK, next_period_index=2,
                            next_invoice_amount=1000, cancel_at=utc(4, 19)),
        # Yearly 39,800 JPY renewing Apr 1, downgraded at period end to 29,800.
        SubscriptionOutlook(subscription_id="s3", customer_id="c3", currency="JPY",
                            anchor=utc(4, 1, year=2026), interval=Interval.YEAR,
                            next_period_index=1, next_invoice_amount=39800,
                            change_at=utc(4, 1), amount_after_change=29800),
        # $5.00 first invoice (a once coupon) on Mar 20, then $10.00.
        SubscriptionOutlook(subscription_id="s4", customer_id="c4", currency="USD",
                            anchor=utc(3, 20), interval=Interval.MONTH, next_period_index=0,
                            next_invoice_amount=500, recurring_amount=1000),
    ]  # fmt: skip
    open_ = [
        OpenInvoice(invoice_id="in_9", customer_id="c9", currency="JPY", open_amount=9000,
                    due_at=utc(2, 1), band="31-60"),
        OpenInvoice(invoice_id="in_8", customer_id="c8", currency="USD", open_amount=333,
                    due_at=utc(3, 1), band="1-30"),
    ]  # fmt: skip
    windows = forecast(as_of=utc(3, 10), time_zone="", subscriptions=subscriptions,
                       open_invoices=open_,
                       recovery_rates={"JPY": Decimal("0.8"), "USD": Decimal("0.5")})  # fmt: skip
    got = {(w.currency, w.name): (w.recurring, w.metered, w.open_invoices, w.invoices, w.total)
           for w in windows}  # fmt: skip
    assert got == {
        # 3,000 (s1) + 3 x 1,000 (s2); 280 usage; 9,000 x 0.8 = 7,200
        ("JPY", "rest_of_month"): (6000, 280, 7200, 4, 13480),
        # 3,000 (s1) + 2 x 1,000 (s2) + 29,800 (s3 downgraded); 310 usage
        ("JPY", "next_month"): (34800, 310, 0, 4, 35110),
        # 500; 333 x 0.5 = 166.5 -> 166 (half-even)
        ("USD", "rest_of_month"): (500, 0, 166, 1, 666),
        ("USD", "next_month"): (1000, 0, 0, 1, 1000),
    }
    assert windows[0].start == utc(3, 10) and windows[0].end == utc(4)


def test_forecast_windows_follow_the_reporting_zone() -> None:
    # 2027-03-31T16:00Z is already April 1 in Tokyo: the "rest of the month" is April's.
    (rest, following) = forecast(as_of=utc(3, 31, 16), time_zone="Asia/Tokyo", subscriptions=[
        SubscriptionOutlook(subscription_id="s", customer_id="c", currency="JPY",
                            anchor=utc(1, 1), interval=Interval.MONTH, next_period_index=4,
                            next_invoice_amount=100)])  # fmt: skip
    assert rest.end == utc(4, 30, 15) and following.end == utc(5, 31, 15)
    assert (rest.recurring, following.recurring) == (0, 100)  # May 1 00:00Z is in May
