"""How the revenue reports read: one shape per report, shared by the HTTP API and the
CLI's ``--json`` (``kakin report``).

Every report says when its figures were read (``as_of``) and how far behind the
ledger they may be (``lag_seconds``: 0, they are computed from the ledger at request
time), then one block per currency (amounts of two currencies are never added), each
with one row per bucket. Amounts are integers in the currency's minor unit (yen,
cents); rates are decimal strings with four places (``"0.0525"`` is 5.25 %), ``null``
where the denominator is 0. The definitions are in docs/metrics.md. Asked with a
``reporting_currency``, a report adds one ``converted`` block, its figures converted into
that currency with the rates the operator entered (``analytics_conversion``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from billing.analytics.buckets import Bucket
from billing.analytics.customers import CustomerFigures
from billing.analytics.dunning import DunningBucket
from billing.analytics.receivables import Aging
from billing.analytics.revenue import RevenueBucket
from billing.analytics.trends import TrendPoint
from kakin.services.analytics import LAG_SECONDS, CurrencyBlock, MrrRow, Report
from kakin.services.analytics_conversion import Conversion, RateUsed
from kakin.services.analytics_forecast import ForecastReport, ForecastRow
from kakin.views.exchange_rates import ExchangeRateOut

B = TypeVar("B", bound=BaseModel)

FRESHNESS = (
    "Computed from the billing ledger when asked: a change is in the next answer "
    "(within 5 seconds, the lag is 0 s); a past bucket never changes unless a "
    "correction entry is recorded, and then lists it under corrections."
)


class TrendOut(BaseModel):
    """A figure against earlier buckets (rates as decimal strings)."""

    growth: Decimal | None = Field(description="(value - previous bucket's) / previous")
    year_over_year: Decimal | None = Field(
        description="(value - the same bucket a year earlier) / that value"
    )
    moving_average: Decimal | None = Field(
        description="the mean of this bucket and the two before it"
    )

    @classmethod
    def of(cls, point: TrendPoint) -> TrendOut:
        return cls(
            growth=point.growth,
            year_over_year=point.year_over_year,
            moving_average=point.moving_average,
        )


class BucketOut(BaseModel):
    label: str = Field(description="2027-02-28 (day), 2027-W05 (ISO week) or 2027-02 (month)")
    start: datetime = Field(description="the bucket's first instant, a local midnight (UTC)")
    end: datetime = Field(description="the next bucket's first instant (exclusive)")

    @staticmethod
    def span(bucket: Bucket) -> dict[str, Any]:
        return {"label": bucket.label, "start": bucket.start, "end": bucket.end}


def _trend(block: CurrencyBlock, index: int) -> dict[str, TrendOut]:
    return {name: TrendOut.of(points[index]) for name, points in block.trends.items()}


class MrrBucketOut(BucketOut):
    """MRR at the bucket's ends and the movements between, net per customer:
    ``mrr_start + new + expansion + reactivation - contraction - churn = mrr_end``."""

    mrr_start: int
    new: int = Field(description="MRR of customers with MRR for the first time")
    expansion: int = Field(description="the increase of customers whose MRR went up")
    contraction: int = Field(description="the decrease of customers whose MRR went down, not to 0")
    churn: int = Field(description="the start MRR of customers whose MRR went to 0")
    reactivation: int = Field(description="MRR of customers back from 0")
    mrr_end: int
    arr: int = Field(description="mrr_end x 12")
    customers_start: int
    customers_end: int
    new_customers: int
    reactivated_customers: int
    churned_customers: int
    subscriptions: int = Field(description="subscriptions active or past_due at the end")
    usage_revenue: int = Field(
        description="the metered part of the invoices finalized in the bucket (not MRR)"
    )
    corrections: list[int] = Field(description="ids of the correction entries reflected")
    trend: dict[str, TrendOut] = Field(description="the trend of mrr (mrr_end)")

    @classmethod
    def of(cls, row: MrrRow, block: CurrencyBlock, index: int) -> MrrBucketOut:
        m = row.movements
        return cls(
            **cls.span(m.bucket),
            mrr_start=m.start, new=m.new, expansion=m.expansion, contraction=m.contraction,
            churn=m.churn, reactivation=m.reactivation, mrr_end=m.end, arr=m.arr,
            customers_start=m.customers_start, customers_end=m.customers_end,
            new_customers=m.new_customers, reactivated_customers=m.reactivated_customers,
            churned_customers=m.churned_customers, subscriptions=m.subscriptions_end,
            usage_revenue=row.usage_revenue, corrections=list(m.corrections),
            trend=_trend(block, index),
        )  # fmt: skip


class CustomersBucketOut(BucketOut):
    """Counts and churn of the bucket."""

    subscriptions: int = Field(description="subscriptions active or past_due at the end")
    customers_start: int = Field(description="customers with MRR above 0 at the start")
    customers: int = Field(description="customers with MRR above 0 at the end")
    arpa: int | None = Field(description="mrr_end / customers (minor units)")
    customer_churn_rate: Decimal | None = Field(
        description="customers who churned / customers_start"
    )
    gross_mrr_churn_rate: Decimal | None = Field(description="(churn + contraction) / mrr_start")
    net_mrr_churn_rate: Decimal | None = Field(
        description="(churn + contraction - expansion - reactivation) / mrr_start"
    )
    quick_ratio: Decimal | None = Field(
        description="(new + expansion + reactivation) / (churn + contraction)"
    )
    ltv: int | None = Field(description="arpa / customer_churn_rate, month buckets only")
    trend: dict[str, TrendOut] = Field(description="the trends of customers and subscriptions")

    @classmethod
    def of(cls, row: CustomerFigures, block: CurrencyBlock, index: int) -> CustomersBucketOut:
        return cls(
            **cls.span(row.bucket),
            subscriptions=row.subscriptions, customers_start=row.customers_start,
            customers=row.customers, arpa=row.arpa, customer_churn_rate=row.customer_churn_rate,
            gross_mrr_churn_rate=row.gross_mrr_churn_rate,
            net_mrr_churn_rate=row.net_mrr_churn_rate, quick_ratio=row.quick_ratio,
            ltv=row.ltv, trend=_trend(block, index),
        )  # fmt: skip


class RevenueBucketOut(BucketOut):
    """Money booked in the bucket."""

    invoiced: int = Field(description="totals of invoices finalized, tax included")
    usage: int = Field(description="their metered part (usage revenue)")
    collected: int = Field(description="invoice payments received (never a failed attempt)")
    refunded: int
    credited: int = Field(description="credit notes issued")
    net_collected: int = Field(description="collected - refunded")
    voided: int
    written_off: int
    failed_payments: int = Field(description="payment attempts that failed")
    failed_amount: int
    corrections: list[int] = Field(description="ids of the correction entries reflected")
    trend: dict[str, TrendOut] = Field(description="the trends of invoiced and collected")

    @classmethod
    def of(cls, row: RevenueBucket, block: CurrencyBlock, index: int) -> RevenueBucketOut:
        return cls(
            **cls.span(row.bucket),
            invoiced=row.invoiced, usage=row.usage, collected=row.collected,
            refunded=row.refunded, credited=row.credited, net_collected=row.net_collected,
            voided=row.voided, written_off=row.written_off,
            failed_payments=row.failed_payments, failed_amount=row.failed_amount,
            corrections=list(row.corrections), trend=_trend(block, index),
        )  # fmt: skip


class ReceivablesBucketOut(BucketOut):
    """The open balance at ``as_of`` (the bucket's end, or now for the open bucket),
    by days past due; the bands sum to ``open_balance``."""

    as_of: datetime
    current: int = Field(description="not yet due")
    days_1_30: int
    days_31_60: int
    days_61_90: int
    days_over_90: int
    open_balance: int
    invoices: int = Field(description="invoices with an open amount")

    @classmethod
    def of(cls, row: Aging, bucket: Bucket) -> ReceivablesBucketOut:
        return cls(
            **cls.span(bucket),
            as_of=row.as_of, current=row.current, days_1_30=row.days_1_30,
            days_31_60=row.days_31_60, days_61_90=row.days_61_90,
            days_over_90=row.days_over_90, open_balance=row.open_balance,
            invoices=row.invoices,
        )  # fmt: skip


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


class DunningBucketOut(BucketOut):
    """Payment failures and dunning episodes ended in the bucket."""

    first_attempts: int
    first_attempt_failures: int
    first_attempt_failure_rate: Decimal | None
    recovered: int = Field(description="episodes ended by a payment")
    lost: int = Field(description="episodes ended by a void or a write-off")
    recovery_rate: Decimal | None = Field(description="recovered / (recovered + lost)")
    recovered_amount: int
    lost_amount: int
    recovered_by_step: dict[str, int] = Field(description="recovered amount by ladder step")
    recovered_by_decline_code: dict[str, int] = Field(
        description="recovered amount by the first failure's decline code"
    )
    time_to_recover_median_seconds: float | None
    time_to_recover_mean_seconds: float | None

    @classmethod
    def of(cls, row: DunningBucket) -> DunningBucketOut:
        return cls(
            **cls.span(row.bucket),
            first_attempts=row.first_attempts, first_attempt_failures=row.first_attempt_failures,
            first_attempt_failure_rate=row.first_attempt_failure_rate,
            recovered=row.recovered, lost=row.lost, recovery_rate=row.recovery_rate,
            recovered_amount=row.recovered_amount, lost_amount=row.lost_amount,
            recovered_by_step=dict(row.recovered_by_step),
            recovered_by_decline_code=dict(row.recovered_by_decline_code),
            time_to_recover_median_seconds=_seconds(row.time_to_recover_median),
            time_to_recover_mean_seconds=_seconds(row.time_to_recover_mean),
        )  # fmt: skip


class ForecastWindowOut(BaseModel):
    """Billing expected in a window: recurring + metered + open_invoices = total."""

    window: Literal["rest_of_month", "next_month"]
    start: datetime
    end: datetime
    recurring: int = Field(description="licensed parts of the invoices dated in the window")
    metered: int = Field(description="usage at the current run rate, billed in arrears")
    open_invoices: int = Field(description="open invoices x the observed recovery rate")
    total: int
    invoices: int = Field(description="subscription invoices dated in the window")
    recovery_rate: Decimal | None = Field(
        description="recovered / ended dunning episodes over the report's range"
    )
    subscriptions: int = Field(description="active subscriptions walked")

    @classmethod
    def of(cls, row: ForecastRow) -> ForecastWindowOut:
        w = row.window
        return cls(
            window=w.name,  # type: ignore[arg-type]
            start=w.start, end=w.end, recurring=w.recurring, metered=w.metered,
            open_invoices=w.open_invoices, total=w.total, invoices=w.invoices,
            recovery_rate=row.recovery_rate, subscriptions=row.subscriptions,
        )  # fmt: skip


class CurrencyOut(BaseModel, Generic[B]):
    currency: str
    buckets: list[B]


class RateUsedOut(ExchangeRateOut):
    buckets: list[str] = Field(description="the labels of the buckets it converted")

    @classmethod
    def used(cls, used: RateUsed) -> RateUsedOut:
        return cls(**ExchangeRateOut.of(used.rate).model_dump(), buckets=list(used.buckets))


class ConvertedOut(CurrencyOut[B], Generic[B]):
    """The figures of every block converted into ``currency`` (``reporting_currency``)
    with the rates the operator entered: amounts summed per bucket, rates recomputed
    from them; no trends, and no durations (they are per currency)."""

    rates: list[RateUsedOut] = Field(description="the rates used, with the buckets of each")
    rounding: str = Field(description="how the amounts were converted and rounded")


class ReportOut(BaseModel, Generic[B]):
    object: Literal["analytics_report"] = "analytics_report"
    report: str
    as_of: datetime = Field(description="when the ledger was read: the figures include it all")
    lag_seconds: int = Field(
        default=LAG_SECONDS, description="how far behind the ledger the figures may be: 0"
    )
    freshness: str = FRESHNESS
    time_zone: str = Field(description="the reporting calendar (KAKIN_REPORTING_TIME_ZONE)")
    interval: Literal["day", "week", "month"]
    start: datetime = Field(description="the first bucket's start")
    end: datetime = Field(description="the last bucket's end (exclusive)")
    currencies: list[CurrencyOut[B]] = Field(description="one block per currency, never added")
    converted: ConvertedOut[B] | None = Field(
        default=None,
        description="with reporting_currency: the figures converted into it (null without)",
    )

    @classmethod
    def build(
        cls,
        report: Report,
        row_of: Callable[[Any, CurrencyBlock, int], B],
        conversion: Conversion | None = None,
    ) -> Any:
        checked = report.range
        converted = None
        if conversion is not None:
            block = conversion.block
            converted = {
                "currency": block.currency,
                "buckets": [row_of(row, block, i) for i, row in enumerate(block.rows)],
                "rates": [RateUsedOut.used(used) for used in conversion.rates],
                "rounding": conversion.rounding,
            }
        return cls.model_validate(
            {
                "report": report.name,
                "as_of": checked.as_of,
                "time_zone": checked.time_zone,
                "interval": str(checked.interval),
                "start": checked.start,
                "end": checked.end,
                "currencies": [
                    {
                        "currency": block.currency,
                        "buckets": [row_of(row, block, i) for i, row in enumerate(block.rows)],
                    }
                    for block in report.blocks
                ],
                "converted": converted,
            }
        )


class MrrReport(ReportOut[MrrBucketOut]):
    """MRR, ARR and the MRR movements per bucket and currency."""

    @classmethod
    def of(cls, report: Report, conversion: Conversion | None = None) -> MrrReport:
        return cls.build(report, MrrBucketOut.of, conversion)


class CustomersReport(ReportOut[CustomersBucketOut]):
    """Active subscriptions and customers, ARPA, churn rates, quick ratio, LTV."""

    @classmethod
    def of(cls, report: Report, conversion: Conversion | None = None) -> CustomersReport:
        return cls.build(report, CustomersBucketOut.of, conversion)


class RevenueReport(ReportOut[RevenueBucketOut]):
    """Invoiced, collected, refunded, credited and failed payments per bucket."""

    @classmethod
    def of(cls, report: Report, conversion: Conversion | None = None) -> RevenueReport:
        return cls.build(report, RevenueBucketOut.of, conversion)


class ReceivablesReport(ReportOut[ReceivablesBucketOut]):
    """Accounts receivable aging at each bucket's end."""

    @classmethod
    def of(cls, report: Report, conversion: Conversion | None = None) -> ReceivablesReport:
        def row(aged: Aging, block: CurrencyBlock, index: int) -> ReceivablesBucketOut:
            return ReceivablesBucketOut.of(aged, report.range.buckets[index])

        return cls.build(report, row, conversion)


class DunningReport(ReportOut[DunningBucketOut]):
    """Dunning: first-attempt failures, recoveries, losses, time to recover."""

    @classmethod
    def of(cls, report: Report, conversion: Conversion | None = None) -> DunningReport:
        return cls.build(report, lambda row, _b, _i: DunningBucketOut.of(row), conversion)


class ForecastReportOut(ReportOut[ForecastWindowOut]):
    """Billing expected for the rest of this month and the next month, per currency
    (each currency's ``buckets`` are its two windows)."""

    unconfirmed_plan_changes: list[str] = Field(
        default_factory=list,
        description="subscriptions with a downgrade scheduled whose workflow did not "
        "answer: forecast at their current plan",
    )

    @classmethod
    def of(cls, report: ForecastReport, conversion: Conversion | None = None) -> ForecastReportOut:
        out = cls.build(report, lambda row, _b, _i: ForecastWindowOut.of(row), conversion)
        out.unconfirmed_plan_changes = list(report.unconfirmed_plan_changes)
        return out


# Each takes the report and its conversion into the reporting currency (or None).
REPORT_VIEWS: dict[str, Callable[[Any, Conversion | None], ReportOut[Any]]] = {
    "mrr": MrrReport.of,
    "revenue": RevenueReport.of,
    "customers": CustomersReport.of,
    "receivables": ReceivablesReport.of,
    "dunning": DunningReport.of,
    "forecast": ForecastReportOut.of,
}
