"""Customer figures per bucket and currency, from the MRR movements.

- **Active subscriptions**: ``active`` or ``past_due`` at the bucket's end.
- **Active customers**: customers whose MRR in the currency is above 0 at the end.
- **ARPA**: end MRR / active customers at the end.
- **Customer churn rate**: customers who churned / active customers at the start.
- **Gross MRR churn rate**: (churn + contraction) / start MRR.
- **Net MRR churn rate**: (churn + contraction - expansion - reactivation) / start
  MRR; below 0 when the base grows on its own (net negative churn).
- **Quick ratio**: (new + expansion + reactivation) / (churn + contraction).
- **LTV**: ARPA / customer churn rate, on month buckets only (ARPA is monthly, so
  the churn rate must be too), where the churn rate is above 0.

Rates and derived amounts follow ``billing.analytics.ratios``; LTV is computed from
the exact ARPA and churn rate and rounded once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing.analytics.buckets import Bucket, Granularity
from billing.analytics.movements import MrrBucket
from billing.analytics.ratios import per, ratio


@dataclass(frozen=True)
class CustomerFigures:
    bucket: Bucket
    currency: str
    subscriptions: int
    customers_start: int
    customers: int
    arpa: int | None
    customer_churn_rate: Decimal | None
    gross_mrr_churn_rate: Decimal | None
    net_mrr_churn_rate: Decimal | None
    quick_ratio: Decimal | None
    ltv: int | None


def customer_figures(
    movements: Iterable[MrrBucket], *, interval: Granularity | str
) -> tuple[CustomerFigures, ...]:
    """The customer figures of each movement bucket, in the same order."""
    monthly = Granularity(interval) is Granularity.MONTH
    figures = []
    for row in movements:
        lost = row.churn + row.contraction
        ltv = None
        if monthly and row.churned_customers and row.customers_end:
            # ARPA / (churned / customers_start), exactly, rounded once.
            ltv = per(
                Fraction(row.end, row.customers_end) * row.customers_start,
                row.churned_customers,
            )
        figures.append(
            CustomerFigures(
                bucket=row.bucket,
                currency=row.currency,
                subscriptions=row.subscriptions_end,
                customers_start=row.customers_start,
                customers=row.customers_end,
                arpa=per(row.end, row.customers_end),
                customer_churn_rate=ratio(row.churned_customers, row.customers_start),
                gross_mrr_churn_rate=ratio(lost, row.start),
                net_mrr_churn_rate=ratio(lost - row.expansion - row.reactivation, row.start),
                quick_ratio=ratio(row.new + row.expansion + row.reactivation, lost),
                ltv=ltv,
            )
        )
    return tuple(figures)
