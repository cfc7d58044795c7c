"""The dashboard, the console's first page: revenue and payment status at a glance.

Every figure is a report of the analytics service read with the parameters the
``/v1/analytics/*`` endpoints take (``ReportParams``: from, to, interval month, one
currency) and shaped by the same views (``kakin.views.analytics``), so the page and the
API answer alike; the page only picks which numbers to show and draws them
(``charts``). "Needs attention" lists past-due and suspended subscriptions and the
invoices failing to charge, from the subscriptions and invoices services.

The range is chosen in months (``from=2031-01&to=2031-12``, both included, on the
reporting calendar); without it, the reports' default: the last 12 months, this one
included. The currency is one the ledger holds (two currencies are never added).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.charts import (
    Band,
    Series,
    Units,
    band_chart,
    bar_chart,
    line_chart,
    long_month,
)
from api.console.auth import HOME, AnyStaff, locale_of
from api.console.messages import translator
from api.console.rendering import render
from api.deps import Deps, deps_of
from api.requests.analytics import ReportParams
from api.routers.analytics import forecast_report
from billing.calendar import zone
from kakin.services import analytics, invoices, subscriptions
from kakin.services.analytics import Report, ReportFieldError, ReportQuery
from kakin.views.analytics import (
    DunningReport,
    ForecastReportOut,
    MrrReport,
    ReceivablesReport,
    RevenueReport,
)
from models.payloads import SubscriptionStatus
from models.tables import Invoice, Subscription

router = APIRouter(include_in_schema=False)

# How many of each kind "needs attention" lists (the invoices and subscriptions pages
# list them all).
ATTENTION_ROWS = 10
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def month_bounds(from_month: str | None, to_month: str | None) -> tuple[str | None, str | None]:
    """The reports' ``from`` and ``to`` for a range of months, both included:
    ``2031-01``..``2031-12`` is ``2031-01-01``..``2032-01-01`` (local midnights). A value
    that is no month is handed on as it is, for the service to name in its refusal."""
    start = f"{from_month}-01" if from_month and MONTH.fullmatch(from_month) else from_month
    end = to_month or None
    if to_month and MONTH.fullmatch(to_month):
        year, month = int(to_month[:4]), int(to_month[5:])
        end = date(year + month // 12, month % 12 + 1, 1).isoformat()
    return start or None, end


@dataclass(frozen=True)
class Reports:
    mrr: MrrReport
    revenue: RevenueReport
    receivables: ReceivablesReport
    dunning: DunningReport
    forecast: ForecastReportOut


async def read_reports(deps: Deps, query: ReportQuery) -> Reports:
    """The five reports of the dashboard, read side by side as the API reads each."""

    def read(figures: Callable[..., Report]) -> Any:
        return run_in_threadpool(figures, deps.sessions, query)

    mrr, revenue, receivables, dunning, forecast = await asyncio.gather(
        read(analytics.mrr), read(analytics.revenue), read(analytics.receivables),
        read(analytics.dunning), forecast_report(deps, query),
    )  # fmt: skip
    return Reports(
        mrr=MrrReport.of(mrr),
        revenue=RevenueReport.of(revenue),
        receivables=ReceivablesReport.of(receivables),
        dunning=DunningReport.of(dunning),
        forecast=ForecastReportOut.of(forecast),
    )


# -- needs attention -------------------------------------------------------------------


@dataclass(frozen=True)
class Troubled:
    """A row of "needs attention": what it is, whose, and where to act on it."""

    href: str
    title: str
    customer: str
    status: str
    amount: int | None
    currency: str
    since: datetime | None


def _subscription(row: Subscription) -> Troubled:
    return Troubled(
        href=f"/console/subscriptions/{row.id}", title=row.id, customer=row.customer.name,
        status=row.status, amount=None, currency=row.customer.currency, since=row.updated_at,
    )  # fmt: skip


def _invoice(row: Invoice) -> Troubled:
    return Troubled(
        href=f"/console/invoices/{row.id}", title=row.number or row.id,
        customer=row.customer.name, status=row.status, amount=row.amount_due,
        currency=row.currency, since=row.finalized_at,
    )  # fmt: skip


def needs_attention(deps: Deps) -> dict[str, list[Troubled]]:
    def of_status(status: SubscriptionStatus) -> list[Troubled]:
        rows, _ = subscriptions.list_subscriptions(
            deps.sessions, _subscription, limit=ATTENTION_ROWS, starting_after=None,
            status=status,
        )  # fmt: skip
        return rows

    return {
        "past_due": of_status(SubscriptionStatus.PAST_DUE),
        "suspended": of_status(SubscriptionStatus.SUSPENDED),
        "failing": invoices.failing_invoices(deps.sessions, _invoice, limit=ATTENTION_ROWS),
    }


# -- what the page shows ------------------------------------------------------------------


def percent(rate: Decimal | None, *, signed: bool = False) -> str:
    """A rate as people read it: ``0.0525`` is ``5.3%`` (``+5.3%`` when ``signed``)."""
    if rate is None:
        return "–"
    shown = f"{rate * 100:.1f}%"
    return f"+{shown}" if signed and rate > 0 else shown


def charts(reports: Reports, currency: str, locale: str, t: Callable[..., str]) -> dict[str, Any]:
    """The dashboard's drawings, each from one report's rows as the API gives them."""
    money, counts = Units(currency, locale), Units(None, locale)
    mrr = reports.mrr.currencies[0].buckets
    revenue = reports.revenue.currencies[0].buckets
    labels = [b.label for b in mrr]
    aging = reports.receivables.currencies[0].buckets[-1]
    dunning = reports.dunning.currencies[0].buckets[-1]
    head = t("dashboard.month")
    return {
        "mrr": line_chart(
            t("dashboard.mrr_chart"), labels,
            [Series("mrr", t("dashboard.mrr"), tuple(b.mrr_end for b in mrr))], money, head=head,
        ),
        "revenue": bar_chart(
            t("dashboard.revenue_chart"), [b.label for b in revenue],
            [Series("invoiced", t("dashboard.invoiced"), tuple(b.invoiced for b in revenue)),
             Series("collected", t("dashboard.collected"), tuple(b.collected for b in revenue))],
            money, head=head,
        ),
        "aging": band_chart(
            t("dashboard.aging"),
            [Band(key, t(f"dashboard.aging.{key}"), getattr(aging, key))
             for key in ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")],
            money, series="aging",
        ),
        "funnel": band_chart(
            t("dashboard.funnel"),
            [Band(key, t(f"dashboard.funnel.{key}"), getattr(dunning, key))
             for key in ("first_attempts", "first_attempt_failures", "recovered", "lost")],
            counts, series="funnel",
        ),
    }  # fmt: skip


def _month_of(moment: datetime, time_zone: str) -> str:
    return moment.astimezone(zone(time_zone)).strftime("%Y-%m")


@router.get(HOME)
async def dashboard(
    request: Request,
    me: AnyStaff,
    currency: Annotated[str | None, Query(max_length=10)] = None,
    from_month: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    to_month: Annotated[str | None, Query(alias="to", max_length=20)] = None,
) -> Response:
    deps = deps_of(request)
    time_zone = deps.settings.reporting_time_zone
    held, attention = await asyncio.gather(
        run_in_threadpool(analytics.held_currencies, deps.sessions),
        run_in_threadpool(needs_attention, deps),
    )
    page: dict[str, Any] = {
        "held": held, "attention": attention, "time_zone": time_zone, "currency": None,
        "from_month": from_month or "", "to_month": to_month or "", "refused": None,
        "percent": percent, "long_month": long_month,
    }  # fmt: skip
    if not held:
        return render(request, "dashboard.html.j2", **page)
    page["currency"] = chosen = currency or held[0]
    start, end = month_bounds(from_month, to_month)
    query = ReportParams(start, end, "month", chosen).query(time_zone)
    try:
        reports = await read_reports(deps, query)
    except ReportFieldError as refused:
        page["refused"] = str(refused)
        return render(request, "dashboard.html.j2", status=422, **page)
    months = [b.label for b in reports.mrr.currencies[0].buckets]
    locale = locale_of(request, me.staff)
    page |= {
        "reports": reports,
        "charts": charts(reports, chosen, locale, translator(locale)),
        "from_shown": months[0], "to_shown": months[-1],
        "from_month": from_month or months[0], "to_month": to_month or months[-1],
        "forecast_months": [
            _month_of(w.start, time_zone) for w in reports.forecast.currencies[0].buckets
        ],
    }  # fmt: skip
    return render(request, "dashboard.html.j2", **page)
