"""The optional reporting currency: every report's figures, converted into one currency
with the rates the operator entered (``kakin.services.exchange_rates``), never fetched.

The currency blocks of a report are left as they are (JPY and USD are never added);
the conversion is one more block, the figures "in" the reporting currency, computed
after the report from its bucket totals:

- each currency's bucket total is converted once, at the rate effective on the
  bucket's first day on the reporting calendar (the latest rate of the pair entered
  on or before it), and rounded half-even to the reporting currency's minor unit;
  the reporting currency's own figures are taken as they are;
- the converted block's amounts are the sums of those converted totals; counts are
  summed; rates (churn, ARPA, quick ratio, recovery...) are recomputed from the
  converted amounts and summed counts, never averaged; durations (time to recover)
  and the forecast's recovery rate are per currency only, so they are null here;
- a bucket with an amount in a currency that has no rate for it is a 422 naming the
  currency and the bucket, never a silent 0 or 1 (a bucket whose amounts are all 0
  needs no rate: 0 is 0 at any rate).

Because every movement is rounded on its own, the MRR identity (start + new +
expansion + reactivation - contraction - churn = end) holds exactly in each currency's
block, and in the converted block only to within that rounding; a bucket's converted
start may also differ from the previous bucket's converted end when the rate changed
between them (the effect of the exchange rate, not a movement).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.customers import customer_figures
from billing.analytics.dunning import DunningBucket
from billing.analytics.forecast import ForecastWindow
from billing.analytics.movements import MrrBucket
from billing.analytics.receivables import Aging
from billing.analytics.revenue import RevenueBucket
from billing.calendar import zone
from billing.money import exponent
from billing.rounding import RoundingMode, round_fraction
from kakin.services import analytics
from kakin.services.analytics import CurrencyBlock, MrrRow, Report, ReportFieldError, ReportQuery
from kakin.services.analytics_forecast import ForecastRow
from kakin.services.exchange_rates import ExchangeRate, ExchangeRateError, RateBook, rate_book

ROUNDING = (
    "Each currency's bucket total is converted once, at the rate effective on the "
    "bucket's first day, and rounded half-even to the reporting currency's minor unit; "
    "the converted figures are the sums of those amounts, and rates are recomputed "
    "from them."
)

# The amount fields of each figure's row (the other int fields are counts, summed).
_MONEY: dict[type, frozenset[str]] = {
    MrrBucket: frozenset({"start", "new", "expansion", "contraction", "churn",
                          "reactivation", "end"}),
    RevenueBucket: frozenset({"invoiced", "usage", "collected", "refunded", "credited",
                              "voided", "written_off", "failed_amount"}),
    Aging: frozenset({"current", "days_1_30", "days_31_60", "days_61_90", "days_over_90"}),
    DunningBucket: frozenset({"recovered_amount", "lost_amount", "recovered_by_step",
                              "recovered_by_decline_code"}),
    ForecastWindow: frozenset({"recurring", "metered", "open_invoices"}),
}  # fmt: skip


@dataclass(frozen=True)
class RateUsed:
    """A rate the converted block used, and the buckets (labels) it converted."""

    rate: ExchangeRate
    buckets: tuple[str, ...]


@dataclass(frozen=True)
class Conversion:
    """The report's figures in the reporting currency: ``block.rows`` has one row per
    bucket (the report's own row types), ``block.trends`` is empty (a trend would need
    rates for the year before the range)."""

    block: CurrencyBlock
    rates: tuple[RateUsed, ...]
    rounding: str = ROUNDING


def convert(amount: int, rate: Decimal, source: str, target: str) -> int:
    """``amount`` minor units of ``source`` in minor units of ``target``, rounded once."""
    scale = Fraction(10) ** (exponent(target) - exponent(source))
    return round_fraction(Fraction(amount) * Fraction(rate) * scale, RoundingMode.HALF_EVEN)


Converter = Callable[[int], int]


def _combined(rows: Sequence[tuple[Any, Converter]], target: str) -> Any:
    """One row of the figures of several currencies (the same bucket and type): amounts
    converted and summed, counts summed, correction ids joined, durations dropped."""
    first = rows[0][0]
    money = _MONEY[type(first)]
    values: dict[str, Any] = {}
    for item in dataclasses.fields(first):
        name = item.name
        parts = [(getattr(row, name), to) for row, to in rows]
        sample = parts[0][0]
        if name == "currency":
            values[name] = target
        elif name in money and isinstance(sample, dict):
            merged: defaultdict[str, int] = defaultdict(int)
            for part, to in parts:
                for key, amount in part.items():
                    merged[key] += to(amount)
            values[name] = dict(sorted(merged.items()))
        elif name in money:
            values[name] = sum(to(part) for part, to in parts)
        elif isinstance(sample, bool) or not isinstance(sample, (int, tuple, timedelta)):
            values[name] = sample  # the bucket, the window's name and span, as_of
        elif isinstance(sample, int):
            values[name] = sum(part for part, _ in parts)
        elif isinstance(sample, tuple):
            values[name] = tuple(sorted({i for part, _ in parts for i in part}))
        else:
            values[name] = None  # a duration: a median of two currencies is no median
    return type(first)(**values)


@dataclass
class _Rates:
    """The rates a conversion looks up, and which buckets each converted."""

    book: RateBook
    used: dict[tuple[str, date], list[str]] = dataclasses.field(default_factory=dict)
    found: dict[tuple[str, date], ExchangeRate] = dataclasses.field(default_factory=dict)

    def converter(self, currency: str, day: date, label: str) -> Converter:
        """How the bucket's amounts of ``currency`` convert. The rate is looked up at
        the first amount that is not 0: 0 is 0 at any rate, so a currency's buckets
        before its first entry need no rate."""
        if currency == self.book.reporting_currency:
            return lambda amount: amount
        found: list[Decimal] = []

        def to(amount: int) -> int:
            if amount == 0:
                return 0
            if not found:
                found.append(self.rate(currency, day, label))
            return convert(amount, found[0], currency, self.book.reporting_currency)

        return to

    def rate(self, currency: str, day: date, label: str) -> Decimal:
        target = self.book.reporting_currency
        rate = self.book.rate_on(currency, day)
        if rate is None:
            raise ReportFieldError(
                "reporting_currency",
                f"reporting_currency {target} needs a {currency} rate effective on or "
                f"before {day} (the bucket {label}) and none is entered: set one with "
                f"PUT /v1/exchange-rates or `kakin rates set {currency} {target} <rate> "
                f"--from {day}`",
            )
        key = (currency, rate.effective_from)
        self.found[key] = rate
        labels = self.used.setdefault(key, [])
        if label not in labels:
            labels.append(label)
        return rate.rate

    def listed(self) -> tuple[RateUsed, ...]:
        return tuple(RateUsed(rate=self.found[key], buckets=tuple(self.used[key]))
                     for key in sorted(self.used))  # fmt: skip


def _spans(report: Report) -> list[tuple[str, date]]:
    """Each row's label and the local date its rate is looked up for."""
    tz = zone(report.range.time_zone)
    if report.name == "forecast":
        windows = [row.window for row in report.blocks[0].rows] if report.blocks else []
        return [(w.name, w.start.astimezone(tz).date()) for w in windows]
    return [(b.label, b.start.astimezone(tz).date()) for b in report.range.buckets]


def _rows(
    blocks: Sequence[CurrencyBlock], spans: list[tuple[str, date]], rates: _Rates
) -> list[Any]:
    """The converted row of each bucket, of the blocks' own row type."""
    converted: list[Any] = []
    for index, (label, day) in enumerate(spans):
        parts = [(b.rows[index], rates.converter(b.currency, day, label)) for b in blocks]
        target = rates.book.reporting_currency
        first = parts[0][0]
        if isinstance(first, MrrRow):
            movements = _combined([(r.movements, to) for r, to in parts], target)
            usage = sum(to(r.usage_revenue) for r, to in parts)
            converted.append(MrrRow(movements=movements, usage_revenue=usage))
        elif isinstance(first, ForecastRow):
            window = _combined([(r.window, to) for r, to in parts], target)
            walked = sum(r.subscriptions for r, _ in parts)
            converted.append(ForecastRow(window=window, recovery_rate=None, subscriptions=walked))
        else:
            converted.append(_combined(parts, target))
    return converted


def in_reporting_currency(
    sessions: sessionmaker[Session],
    query: ReportQuery,
    report: Report,
    reporting_currency: str | None,
) -> Conversion | None:
    """The report's figures converted into ``reporting_currency`` (``None``: not asked).

    ``ReportFieldError`` names ``reporting_currency`` when it is not a currency, or when
    a bucket's currency has no rate.
    """
    if reporting_currency is None or not reporting_currency.strip():
        return None
    try:
        book = rate_book(sessions, reporting_currency)
    except ExchangeRateError as error:
        raise ReportFieldError("reporting_currency", str(error)) from None
    rates = _Rates(book=book)
    spans = _spans(report)
    source = report
    if report.name == "customers":
        # Its rows keep only rates and counts: convert the MRR movements they come from
        # (read at the same moment) and recompute the customer figures from those.
        same = dataclasses.replace(query, now=report.range.as_of)
        source = analytics.mrr(sessions, same)
    rows: Sequence[Any] = _rows(source.blocks, spans, rates) if source.blocks else ()
    if report.name == "customers":
        movements = [row.movements for row in rows]
        rows = customer_figures(movements, interval=report.range.interval)
    block = CurrencyBlock(currency=book.reporting_currency, rows=tuple(rows))
    return Conversion(block=block, rates=rates.listed())
