"""``kakin report mrr|revenue|customers|receivables|dunning|forecast``: the revenue analytics.

The same figures as ``GET /v1/analytics/<report>`` (``kakin.services.analytics``), with
the same options: ``--from``, ``--to``, ``--interval``, ``--currency`` and
``--reporting-currency`` (the figures also converted, "in JPY"). By default an
aligned table per currency, amounts as the customer reads them (3,980円, $12.50) and
rates as percentages; ``--json`` prints the API's body; ``--csv`` one row per currency
and bucket for a spreadsheet, amounts in major units (12.50) and rates as fractions.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.money import format_amount, to_major
from billing.rounding import RoundingMode
from kakin import runtime
from kakin.cli.output import format_table, format_when, print_json, sessions
from kakin.platform.settings import Settings, get_settings
from kakin.services import analytics
from kakin.services import analytics_conversion as converting
from kakin.services import analytics_forecast as forecasting
from kakin.services.analytics import ReportQuery
from kakin.views.analytics import REPORT_VIEWS


@dataclass(frozen=True)
class Column:
    """One column: its header, the field of the API's bucket it shows, and how."""

    header: str
    field: str
    kind: str = "money"  # money | rate | count | text | when | seconds


# The columns of each report's table and CSV, read off the API's body.
COLUMNS: dict[str, tuple[Column, ...]] = {
    "mrr": (
        Column("MRR start", "mrr_start"), Column("new", "new"),
        Column("expansion", "expansion"), Column("contraction", "contraction"),
        Column("churn", "churn"), Column("reactivation", "reactivation"),
        Column("MRR end", "mrr_end"), Column("ARR", "arr"),
        Column("customers", "customers_end", "count"), Column("usage", "usage_revenue"),
    ),
    "revenue": (
        Column("invoiced", "invoiced"), Column("usage", "usage"),
        Column("collected", "collected"), Column("refunded", "refunded"),
        Column("credited", "credited"), Column("net collected", "net_collected"),
        Column("failed", "failed_payments", "count"), Column("failed amount", "failed_amount"),
    ),
    "customers": (
        Column("subscriptions", "subscriptions", "count"),
        Column("customers", "customers", "count"), Column("ARPA", "arpa"),
        Column("customer churn", "customer_churn_rate", "rate"),
        Column("gross MRR churn", "gross_mrr_churn_rate", "rate"),
        Column("net MRR churn", "net_mrr_churn_rate", "rate"),
        Column("quick ratio", "quick_ratio", "rate"), Column("LTV", "ltv"),
    ),
    "receivables": (
        Column("as of", "as_of", "when"), Column("current", "current"),
        Column("1-30", "days_1_30"), Column("31-60", "days_31_60"),
        Column("61-90", "days_61_90"), Column("90+", "days_over_90"),
        Column("open", "open_balance"), Column("invoices", "invoices", "count"),
    ),
    "dunning": (
        Column("first tries", "first_attempts", "count"),
        Column("failed", "first_attempt_failures", "count"),
        Column("failure rate", "first_attempt_failure_rate", "rate"),
        Column("recovered", "recovered", "count"), Column("lost", "lost", "count"),
        Column("recovery rate", "recovery_rate", "rate"),
        Column("recovered amount", "recovered_amount"), Column("lost amount", "lost_amount"),
        Column("median to recover", "time_to_recover_median_seconds", "seconds"),
    ),
    "forecast": (
        Column("from", "start", "when"), Column("to", "end", "when"),
        Column("recurring", "recurring"), Column("metered", "metered"),
        Column("open invoices", "open_invoices"), Column("total", "total"),
        Column("invoices", "invoices", "count"),
        Column("recovery rate", "recovery_rate", "rate"),
    ),
}  # fmt: skip


def money(amount: int, currency: str) -> str:
    # A report has no one customer: yen read as Japanese customers read them (3,980円),
    # other currencies with their symbol ($12.50).
    return format_amount(amount, currency, locale="ja" if currency == "JPY" else "en")


def _percent(rate: str) -> str:
    return f"{Decimal(rate) * 100:.2f}%"


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86_400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


def shown(value: Any, column: Column, currency: str, time_zone: str) -> str:
    """A cell of the table, as a person reads it."""
    if value is None:
        return "-"
    if column.kind == "money":
        return money(int(value), currency)
    if column.kind == "rate":
        return _percent(value) if column.field != "quick_ratio" else str(value)
    if column.kind == "when":
        return format_when(datetime.fromisoformat(value), time_zone, time=True)
    if column.kind == "seconds":
        return _duration(float(value))
    return str(value)


def exported(value: Any, column: Column, currency: str) -> str:
    """A cell of the CSV: amounts in major units, rates and times as the API has them."""
    if value is None:
        return ""
    if column.kind == "money":
        return f"{to_major(int(value), currency)}"
    return str(value)


def _label(bucket: dict[str, Any]) -> str:
    return str(bucket.get("label") or bucket.get("window"))


def print_table(name: str, body: dict[str, Any]) -> None:
    span = f"from {body['start']} to {body['end']} by {body['interval']} ({body['time_zone']})"
    if name == "forecast":  # its range is where the recovery rate is observed
        span = (f"({body['time_zone']}), the recovery rate observed from {body['start']} "
                f"to {body['end']}")  # fmt: skip
    print(f"{name} {span}, as of {body['as_of']}, lag {body['lag_seconds']} s")
    if not body["currencies"]:
        print("no figures: the ledger holds no entries yet")
    for block in body["currencies"]:
        _print_block(name, block["currency"], block, body["time_zone"])
    converted = body.get("converted")
    if converted:
        _print_block(name, f"in {converted['currency']}", converted, body["time_zone"])
        for used in converted["rates"]:
            print(f"rate: 1 {used['currency']} = {used['rate']} {used['reporting_currency']} "
                  f"from {used['effective_from']} ({', '.join(used['buckets'])}), "
                  f"entered by {used['entered_by']}")  # fmt: skip
        print(f"rounding: {converted['rounding']}")
    for subscription_id in body.get("unconfirmed_plan_changes") or ():
        print(f"note: {subscription_id}'s scheduled plan change is unconfirmed (no answer)")


def _print_block(name: str, title: str, block: dict[str, Any], time_zone: str) -> None:
    columns = COLUMNS[name]
    code = block["currency"]
    rows = [
        [_label(b), *(shown(b[c.field], c, code, time_zone) for c in columns)]
        for b in block["buckets"]
    ]
    print()
    print(title)
    first = "window" if name == "forecast" else "period"
    right = range(1, len(columns) + 1)
    print(format_table([first, *(c.header for c in columns)], rows, right=right))


def print_csv(name: str, body: dict[str, Any]) -> None:
    columns = COLUMNS[name]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["currency", "period", "start", "end", *(c.field for c in columns)])
    # The converted block's rows say "in JPY" where the others name their currency.
    blocks = [(b["currency"], b) for b in body["currencies"]]
    if body.get("converted"):
        blocks.append((f"in {body['converted']['currency']}", body["converted"]))
    for shown_as, block in blocks:
        code = block["currency"]
        for bucket in block["buckets"]:
            writer.writerow([shown_as, _label(bucket), bucket["start"], bucket["end"],
                             *(exported(bucket[c.field], c, code) for c in columns)])  # fmt: skip


def _plan_changes(settings: Settings) -> tuple[forecasting.PlanChanges, bool]:
    """The scheduled downgrades, asked of their workflows; and whether a Temporal
    client was made (the process must then end without teardown)."""
    candidates = forecasting.plan_change_candidates(sessions())
    if not candidates:
        return forecasting.PlanChanges(pending={}), False

    async def ask() -> forecasting.PlanChanges:
        try:
            client = await asyncio.wait_for(runtime.temporal_client(settings), 5.0)
        except Exception:  # Temporal down: the forecast still answers, saying so
            client = None
        return await forecasting.scheduled_plan_changes(client, candidates)

    return asyncio.run(ask()), True


def _report(name: str, query: ReportQuery, settings: Settings) -> tuple[Any, bool]:
    if name != "forecast":
        readers: dict[str, Callable[..., analytics.Report]] = {
            "mrr": analytics.mrr,
            "revenue": analytics.revenue,
            "customers": analytics.customers,
            "receivables": analytics.receivables,
            "dunning": analytics.dunning,
        }
        return readers[name](sessions(), query), False
    changes, used_temporal = _plan_changes(settings)
    rounding = RoundingMode(settings.tax_rounding)
    # One report per process: keeping the invoice dates for a next request would cost
    # more than it saves (the same figures either way).
    report = forecasting.forecast(sessions(), query, rounding=rounding, plan_changes=changes,
                                  keep=False)  # fmt: skip
    return report, used_temporal


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    query = ReportQuery(
        time_zone=settings.reporting_time_zone,
        from_=args.from_,
        to=args.to,
        interval=args.interval,
        currency=args.currency,
    )
    report, used_temporal = _report(args.report, query, settings)
    conversion = converting.in_reporting_currency(
        sessions(), query, report, args.reporting_currency
    )
    body = REPORT_VIEWS[args.report](report, conversion).model_dump(mode="json")
    if args.json:
        print_json(body)
    elif args.csv:
        print_csv(args.report, body)
    else:
        print_table(args.report, body)
    if used_temporal:
        runtime.exit_process(0)  # temporalio#300: end a client process without its teardown
    return 0


def add_commands(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="revenue analytics: MRR, revenue, customers, receivables, dunning..."
    )
    report.add_argument("report", choices=analytics.REPORTS)
    report.add_argument(
        "--from", dest="from_",
        help="the range's start: a date (local midnight, KAKIN_REPORTING_TIME_ZONE) or "
        "an ISO moment with an offset; default 12 months/12 weeks/30 days back",
    )  # fmt: skip
    report.add_argument("--to", help="the range's end (exclusive); default now")
    report.add_argument("--interval", default="month", help="day, week or month (default)")
    report.add_argument("--currency", help="one currency; default each, in a table of its own")
    report.add_argument(
        "--reporting-currency",
        help="also convert the figures into this currency with the rates of `kakin rates` "
        "(one more table, 'in JPY'); a bucket without a rate is an error",
    )
    form = report.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the HTTP API's body")
    form.add_argument("--csv", action="store_true", help="print CSV for a spreadsheet")
    report.set_defaults(handler=_run)
