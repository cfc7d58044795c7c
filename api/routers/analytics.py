"""Revenue analytics: MRR, revenue, customers, receivables, dunning and the forecast.

Read-only, for support, finance and admin keys. Every report takes ``from``, ``to``,
``interval`` and ``currency`` and is computed from the billing ledger when asked
(``as_of``; ``lag_seconds`` is 0). A range the figures cannot answer is a 422 naming
the field.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from temporalio.client import Client

from api.deps import KEY, DepsDep
from api.errors import RESPONSES, ApiError
from api.requests.analytics import ReportParamsDep
from billing.rounding import RoundingMode
from kakin.services import analytics
from kakin.services import analytics_forecast as forecasting
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

router = APIRouter(prefix="/v1/analytics", responses=RESPONSES, tags=["analytics"])


@router.get("/mrr", response_model=MrrReport)
def get_mrr(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> MrrReport:
    """MRR and ARR per bucket and currency with the movements (new, expansion,
    contraction, churn, reactivation), the usage revenue beside MRR, and MRR's trend."""
    query = params.query(deps.settings.reporting_time_zone)
    return MrrReport.of(analytics.mrr(deps.sessions, query))


@router.get("/revenue", response_model=RevenueReport)
def get_revenue(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> RevenueReport:
    """Invoiced (and its usage part), collected, refunded, credited, voided, written off
    and failed payments per bucket and currency."""
    query = params.query(deps.settings.reporting_time_zone)
    return RevenueReport.of(analytics.revenue(deps.sessions, query))


@router.get("/customers", response_model=CustomersReport)
def get_customers(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> CustomersReport:
    """Active subscriptions and customers, ARPA, customer and MRR churn rates, quick
    ratio and LTV per bucket and currency."""
    query = params.query(deps.settings.reporting_time_zone)
    return CustomersReport.of(analytics.customers(deps.sessions, query))


@router.get("/receivables", response_model=ReceivablesReport)
def get_receivables(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> ReceivablesReport:
    """The open balance by days past due (current, 1-30, 31-60, 61-90, 90+) at each
    bucket's end, per currency."""
    query = params.query(deps.settings.reporting_time_zone)
    return ReceivablesReport.of(analytics.receivables(deps.sessions, query))


@router.get("/dunning", response_model=DunningReport)
def get_dunning(deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY) -> DunningReport:
    """First-attempt failure rate, recovery rate, recovered amount by ladder step and
    decline code, and time to recover per bucket and currency."""
    query = params.query(deps.settings.reporting_time_zone)
    return DunningReport.of(analytics.dunning(deps.sessions, query))


@router.get("/forecast", response_model=ForecastReportOut)
async def get_forecast(
    deps: DepsDep, params: ReportParamsDep, _: KeyInfo = KEY
) -> ForecastReportOut:
    """Billing expected for the rest of this month and for the next month per currency,
    from each active subscription's next invoice, its usage run rate, scheduled
    cancellations and downgrades, and the open invoices at the recovery rate observed
    over the range."""
    query = params.query(deps.settings.reporting_time_zone)
    candidates = await run_in_threadpool(forecasting.plan_change_candidates, deps.sessions)
    client: Client | None = None
    if candidates:
        try:
            client = await deps.connected()
        except ApiError:  # the forecast still answers, naming what it could not confirm
            log.warning("forecast without Temporal: %d plan changes unconfirmed", len(candidates))
    changes = await forecasting.scheduled_plan_changes(client, candidates)
    report = await run_in_threadpool(
        lambda: forecasting.forecast(
            deps.sessions,
            query,
            rounding=RoundingMode(deps.settings.tax_rounding),
            plan_changes=changes,
        )
    )
    return ForecastReportOut.of(report)
