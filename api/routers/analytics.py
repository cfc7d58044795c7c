"""Revenue analytics: MRR, revenue, customers, receivables, dunning and the forecast.

Read-only, for support, finance and admin keys. Every report takes ``from``, ``to``,
``interval`` and ``currency`` and is computed from the billing ledger when asked
(``as_of``; ``lag_seconds`` is 0); with ``reporting_currency`` it adds the figures
converted into it (``converted``). A range the figures cannot answer, or a bucket
without a rate, is a 422 naming the field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from temporalio.client import Client

from api.deps import KEY, Deps, DepsDep
from api.errors import RESPONSES, ApiError
from api.requests.analytics import ReportParams, ReportParamsDep
from billing.rounding import RoundingMode
from kakin.services import analytics
from kakin.services import analytics_conversion as converting
from kakin.services import analytics_forecast as forecasting
from kakin.services.analytics import ReportQuery
from kakin.services.analytics_conversion import Conversion
from kakin.services.analytics_forecast import ForecastReport
from kakin.services.api_keys import KeyInfo
from kakin.views.analytics import (
    CustomersReport,
    DunningReport,
    ForecastReportOut,
    MrrReport,
    ReceivablesReport,
    RevenueReport,
)

log = logging.getLogger("kakin.api")
R = TypeVar("R")

router = APIRouter(prefix="/v1/analytics", responses=RESPONSES, tags=["analytics"])


def _read(
    deps: Deps,
    params: ReportParams,
    figures: Callable[..., analytics.Report],
    view: Callable[[analytics.Report, Conversion | None], R],
) -> R:
    """A report's figures, and their conversion when a reporting currency is asked."""
    query = params.query(deps.settings.reporting_time_zone)
    report = figures(deps.sessions, query)
    converted = converting.in_reporting_currency(
        deps.sessions, query, report, params.reporting_currency
    )
    return view(report, converted)


@router.get("/mrr", response_model=MrrReport)
def get_mrr(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> MrrReport:
    """MRR and ARR per bucket and currency with the movements (new, expansion,
    contraction, churn, reactivation), the usage revenue beside MRR, and MRR's trend."""
    return _read(deps, params, analytics.mrr, MrrReport.of)


@router.get("/revenue", response_model=RevenueReport)
def get_revenue(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> RevenueReport:
    """Invoiced (and its usage part), collected, refunded, credited, voided, written off
    and failed payments per bucket and currency."""
    return _read(deps, params, analytics.revenue, RevenueReport.of)


@router.get("/customers", response_model=CustomersReport)
def get_customers(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> CustomersReport:
    """Active subscriptions and customers, ARPA, customer and MRR churn rates, quick
    ratio and LTV per bucket and currency."""
    return _read(deps, params, analytics.customers, CustomersReport.of)


@router.get("/receivables", response_model=ReceivablesReport)
def get_receivables(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> ReceivablesReport:
    """The open balance by days past due (current, 1-30, 31-60, 61-90, 90+) at each
    bucket's end, per currency."""
    return _read(deps, params, analytics.receivables, ReceivablesReport.of)


@router.get("/dunning", response_model=DunningReport)
def get_dunning(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> DunningReport:
    """First-attempt failure rate, recovery rate, recovered amount by ladder step and
    decline code, and time to recover per bucket and currency."""
    return _read(deps, params, analytics.dunning, DunningReport.of)


async def forecast_report(deps: Deps, query: ReportQuery) -> ForecastReport:
    """The forecast's figures as this endpoint reads them (the console's dashboard too):
    the plan changes scheduled in the workflows, then the forecast in the thread pool."""
    candidates = await run_in_threadpool(forecasting.plan_change_candidates, deps.sessions)
    client: Client | None = None
    if candidates:
        try:
            client = await deps.connected()
        except ApiError:  # the forecast still answers, naming what it could not confirm
            log.warning("forecast without Temporal: %d plan changes unconfirmed", len(candidates))
    changes = await forecasting.scheduled_plan_changes(client, candidates)
    return await run_in_threadpool(
        lambda: forecasting.forecast(
            deps.sessions,
            query,
            rounding=RoundingMode(deps.settings.tax_rounding),
            plan_changes=changes,
        )
    )


@router.get("/forecast", response_model=ForecastReportOut)
async def get_forecast(
    deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY
) -> ForecastReportOut:
    """Billing expected for the rest of this month and for the next month per currency,
    from each active subscription's next invoice, its usage run rate, scheduled
    cancellations and downgrades, and the open invoices at the recovery rate observed
    over the range."""
    query = params.query(deps.settings.reporting_time_zone)
    report = await forecast_report(deps, query)
    converted = await run_in_threadpool(
        converting.in_reporting_currency, deps.sessions, query, report, params.reporting_currency
    )
    return ForecastReportOut.of(report, converted)
