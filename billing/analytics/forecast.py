"""Forecast of billing for the rest of the current month and for the next month.

The method, from inputs the service gathers (nothing here reads the database):

1. **Recurring**: each active subscription's invoices are walked forward from its
   next one on its own billing calendar (``billing.calendar.boundary``: anchor,
   interval, count, time zone), and every invoice dated in a window counts. The next
   invoice counts at the amount of the upcoming invoice (the licensed part: the same
   function that builds the upcoming invoice, usage lines left out); later ones at
   ``recurring_amount``.
2. **Scheduled changes**: an invoice at or after a scheduled plan change counts at
   ``amount_after_change`` (a downgrade at period end changes the invoice that
   opens the next period); an invoice at or after a scheduled cancellation does not
   count at all.
3. **Metered**: usage is billed in arrears, so each forecast invoice also bills the
   period that ends at it, at the subscription's current run rate (minor units per
   day) times that period's length.
4. **Open invoices**: expected to be collected within the current month at the
   currency's observed recovery rate (``billing.analytics.dunning``); without an
   observed rate they add nothing.

Windows are ``[as_of, start of next month)`` and the next month, on the reporting
calendar. Each part is summed exactly and rounded half-even once per window and
currency; the total is the sum of the rounded parts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from billing.analytics.buckets import Granularity, bucket_range
from billing.analytics.receivables import OpenInvoice
from billing.calendar import Interval, boundary
from billing.money import normalize_currency
from billing.rounding import RoundingMode, round_fraction

_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_NO_DAYS = Fraction(0)
# The shortest a period of one interval can be (a month-end anchor clamped into
# February, a day or a week shortened by a DST change): the walk stops when the next
# invoice cannot fall before the end, without computing it.
_SHORTEST = {
    Interval.DAY: timedelta(hours=22),
    Interval.WEEK: timedelta(days=6, hours=22),
    Interval.MONTH: timedelta(days=27),
    Interval.YEAR: timedelta(days=364),
}


@dataclass(frozen=True)
class SubscriptionOutlook:
    """What the service knows of one active subscription's coming invoices.

    Attributes:
        anchor, interval, interval_count, time_zone: Its billing calendar.
        next_period_index: The period the next invoice opens (it is dated at
            ``boundary(anchor, interval, interval_count, next_period_index)``).
        next_invoice_amount: The licensed part of the upcoming invoice.
        recurring_amount: The licensed amount of the invoices after it (``None``: the
            same as the next one, e.g. when no once coupon or proration is on it).
        metered_per_day: The metered run rate, minor units per day.
        cancel_at: A scheduled cancellation: no invoice at or after it.
        change_at, amount_after_change: A scheduled plan change.
        next_invoice_at: The next invoice's date when the caller knows it (it must be
            ``boundary(anchor, interval, interval_count, next_period_index)``): one
            boundary fewer to compute per subscription.
    """

    subscription_id: str
    customer_id: str
    currency: str
    anchor: datetime
    interval: Interval
    next_period_index: int
    next_invoice_amount: int
    interval_count: int = 1
    time_zone: str = ""
    recurring_amount: int | None = None
    metered_per_day: Decimal = Decimal(0)
    cancel_at: datetime | None = None
    change_at: datetime | None = None
    amount_after_change: int | None = None
    next_invoice_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.change_at is None) != (self.amount_after_change is None):
            raise ValueError("a scheduled plan change needs both change_at and its amount")


@dataclass(frozen=True)
class ForecastWindow:
    name: str  # "rest_of_month" or "next_month"
    start: datetime
    end: datetime
    currency: str
    recurring: int = 0
    metered: int = 0
    open_invoices: int = 0
    invoices: int = 0

    @property
    def total(self) -> int:
        return self.recurring + self.metered + self.open_invoices


def _boundary(outlook: SubscriptionOutlook, index: int) -> datetime:
    return boundary(
        outlook.anchor, outlook.interval, outlook.interval_count, index,
        time_zone=outlook.time_zone,
    )  # fmt: skip


def invoice_dates(
    outlook: SubscriptionOutlook, until: datetime
) -> Iterable[tuple[int, datetime, Fraction]]:
    """``(period index, date, days of usage billed)`` of its invoices before ``until``
    (the days only with a metered run rate: 0 otherwise, and no boundary computed for
    them; each boundary is computed once, as the walk goes on). The dates do not
    depend on the amounts, so a caller may keep them while the amounts change."""
    index = outlook.next_period_index
    metered = bool(outlook.metered_per_day)
    previous = _boundary(outlook, index - 1) if metered and index > 0 else None
    shortest = _SHORTEST[Interval(outlook.interval)] * outlook.interval_count
    at: datetime | None = None
    while True:
        if at is not None and at + shortest >= until:
            return  # the next boundary is at or after ``until``
        at = outlook.next_invoice_at if index == outlook.next_period_index else None
        if at is None:
            at = _boundary(outlook, index)
        if at >= until or (outlook.cancel_at is not None and at >= outlook.cancel_at):
            return
        # In arrears: the invoice opening period ``index`` bills the usage of the
        # period before it (none before the first period).
        used = _NO_DAYS
        if metered and previous is not None:
            used = Fraction((at - previous) // _MICROSECOND, _DAY // _MICROSECOND)
        yield index, at, used
        previous = at
        index += 1


def invoice_amount(outlook: SubscriptionOutlook, index: int, at: datetime) -> int:
    """The licensed amount of its invoice opening period ``index``, dated ``at``."""
    amount = outlook.next_invoice_amount
    if index > outlook.next_period_index and outlook.recurring_amount is not None:
        amount = outlook.recurring_amount
    if outlook.change_at is not None and at >= outlook.change_at:
        assert outlook.amount_after_change is not None
        amount = outlook.amount_after_change
    return amount


def invoices(
    outlook: SubscriptionOutlook, until: datetime
) -> Iterable[tuple[datetime, int, Fraction]]:
    """``(date, licensed amount, days of usage billed)`` of its invoices before ``until``."""
    for index, at, used in invoice_dates(outlook, until):
        yield at, invoice_amount(outlook, index, at), used


class Walk(NamedTuple):
    """One subscription's invoices before the end of the next month (``invoices``), as
    ``forecast_of`` sums them.

    Attributes:
        per_day: Its metered run rate (minor units per day, exact).
        invoices: ``(date, licensed amount, days of usage billed)``, in date order.
    """

    currency: str
    per_day: Fraction | int
    invoices: Sequence[tuple[datetime, int, Fraction]]


class Placed(NamedTuple):
    """``invoices`` invoices of ``amount`` each (no usage), already placed in window
    ``window`` (0: the rest of the month, 1: the next month; ``window_of``)."""

    currency: str
    window: int
    amount: int
    invoices: int


def window_of(at: datetime, as_of: datetime, month_end: datetime, until: datetime) -> int | None:
    """The window an invoice dated ``at`` falls in (0: ``[as_of, month_end)``, 1:
    ``[month_end, until)``), or ``None``."""
    if at < as_of or at >= until:
        return None
    return 0 if at < month_end else 1


def windows(as_of: datetime, time_zone: str) -> tuple[tuple[str, datetime, datetime], ...]:
    """``(name, start, end)`` of the rest of this month and of the next month."""
    month = bucket_range(from_=as_of, to=as_of + _DAY, interval=Granularity.MONTH,
                         time_zone=time_zone)[0]  # fmt: skip
    following = bucket_range(from_=month.end, to=month.end + _DAY,
                             interval=Granularity.MONTH, time_zone=time_zone)[0]  # fmt: skip
    return ("rest_of_month", as_of, month.end), ("next_month", month.end, following.end)


def walk(outlook: SubscriptionOutlook, until: datetime) -> Walk:
    """Its ``Walk`` up to ``until`` (the end of the next month's window)."""
    rate = Fraction(outlook.metered_per_day) if outlook.metered_per_day else 0
    return Walk(normalize_currency(outlook.currency), rate, tuple(invoices(outlook, until)))


def forecast(
    *,
    as_of: datetime,
    time_zone: str,
    subscriptions: Iterable[SubscriptionOutlook],
    open_invoices: Iterable[OpenInvoice] = (),
    recovery_rates: Mapping[str, Decimal | None] | None = None,
) -> tuple[ForecastWindow, ...]:
    """The forecast per window and currency (rest of this month, then next month)."""
    until = windows(as_of, time_zone)[-1][2]
    return forecast_of(
        as_of=as_of,
        time_zone=time_zone,
        walks=(walk(outlook, until) for outlook in subscriptions),
        open_invoices=open_invoices,
        recovery_rates=recovery_rates,
    )


def forecast_of(
    *,
    as_of: datetime,
    time_zone: str,
    walks: Iterable[Walk],
    placed: Iterable[Placed] = (),
    open_invoices: Iterable[OpenInvoice] = (),
    recovery_rates: Mapping[str, Decimal | None] | None = None,
) -> tuple[ForecastWindow, ...]:
    """``forecast`` from each subscription's ``Walk`` (up to the next month's end) and
    invoices counted per window already (``placed``)."""
    named = windows(as_of, time_zone)
    (_, _, month_end), (_, _, until) = named
    recurring: dict[tuple[int, str], int] = defaultdict(int)
    metered: dict[tuple[int, str], Fraction] = defaultdict(Fraction)
    counts: dict[tuple[int, str], int] = defaultdict(int)
    pending: dict[tuple[int, str], Fraction] = defaultdict(Fraction)
    currencies: set[str] = set()
    for code, rate, walked in walks:
        currencies.add(code)
        for at, amount, usage_days in walked:
            number = window_of(at, as_of, month_end, until)
            if number is None:
                continue
            recurring[number, code] += amount
            counts[number, code] += 1
            if rate:
                metered[number, code] += rate * usage_days
    for code, number, amount, count in placed:
        currencies.add(code)
        recurring[number, code] += amount * count
        counts[number, code] += count
    owed: dict[str, int] = defaultdict(int)
    for invoice in open_invoices:
        code = normalize_currency(invoice.currency)
        currencies.add(code)
        owed[code] += invoice.open_amount
    for code, amount in owed.items():
        observed = (recovery_rates or {}).get(code)
        if observed is not None:  # the sum times the rate: exact, one product per currency
            pending[0, code] = Fraction(amount) * Fraction(observed)
    return tuple(
        ForecastWindow(
            name=name,
            start=start,
            end=end,
            currency=code,
            recurring=recurring[number, code],
            metered=round_fraction(metered[number, code], RoundingMode.HALF_EVEN),
            open_invoices=round_fraction(pending[number, code], RoundingMode.HALF_EVEN),
            invoices=counts[number, code],
        )
        for code in sorted(currencies)
        for number, (name, start, end) in enumerate(named)
    )
