"""The query parameters every analytics report takes: from, to, interval, currency, and
the optional reporting_currency."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from kakin.services.analytics import ReportQuery

From = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=40,
        description="the range's start: a date (its local midnight on the reporting "
        "calendar) or a moment with a UTC offset; default: 12 months, 12 weeks or 30 days "
        "back, the current bucket included",
    ),
]
To = Annotated[
    str | None,
    Query(max_length=40, description="the range's end (exclusive), likewise; default: now"),
]
Interval = Annotated[
    Literal["day", "week", "month"],
    Query(description="the buckets: days, ISO weeks (from Monday) or months"),
]
Currency = Annotated[
    str | None,
    Query(
        max_length=10,
        description="one currency the ledger holds (ISO 4217); default: each of them, "
        "in a block of its own",
    ),
]

ReportingCurrency = Annotated[
    str | None,
    Query(
        max_length=10,
        description="also convert the figures into this currency (ISO 4217) with the rates "
        "entered at /v1/exchange-rates: one more block, `converted`; a bucket without a "
        "rate is a 422",
    ),
]


class ReportParams:
    """A report's parameters as asked; the service checks them (422 naming the field)."""

    def __init__(
        self,
        from_: str | None,
        to: str | None,
        interval: str,
        currency: str | None,
        reporting_currency: str | None = None,
    ) -> None:
        self.from_, self.to, self.interval, self.currency = from_, to, interval, currency
        self.reporting_currency = reporting_currency

    def query(self, time_zone: str) -> ReportQuery:
        return ReportQuery(time_zone=time_zone, from_=self.from_, to=self.to,
                           interval=self.interval, currency=self.currency)  # fmt: skip


# ``async`` on purpose (as api.deps.page_query): no trip through the thread pool.
async def report_params(
    from_: From = None,
    to: To = None,
    interval: Interval = "month",
    currency: Currency = None,
    reporting_currency: ReportingCurrency = None,
) -> ReportParams:
    return ReportParams(from_, to, interval, currency, reporting_currency)


ReportParamsDep = Annotated[ReportParams, Depends(report_params)]
