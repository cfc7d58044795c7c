"""The forecast report: what each active subscription will bill, gathered for
``billing.analytics.forecast`` (the method is documented there and in docs/metrics.md).

Per subscription ``active`` or ``past_due``:

- **the next invoice** is dated at the end of its current period, at the licensed
  part of the invoice the renewal will create: ``invoice_drafts.period_draft``, the
  function that builds the real invoice and the upcoming-invoice preview, without the
  usage lines (tax, coupons still due and proration credit included, as invoiced);
- **its calendar** (anchor, period index, zone) is found from the stored periods,
  so later invoices fall where the workflow will date them (a month-end anchor keeps
  its day);
- **metered items** run at the usage received in the current period so far, per day
  of the period elapsed, before tax;
- **a cancellation at period end** bills nothing more; **a downgrade at period end**
  bills the new plan from the next invoice on: the price comes from the workflow's
  ``status`` query (the only place the pending price is kept), asked only of the
  subscriptions whose audit log shows a plan change scheduled in the current period.

Open invoices (as of now) count at the currency's recovery rate observed over the
report's range (``billing.analytics.dunning``).

What each subscription's outlook is made of: ``analytics_forecast_outlooks``; kept
between requests (PostgreSQL, by its rows' versions, the same figures):
``analytics_forecast_kept``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from billing.analytics.buckets import bucket_range
from billing.analytics.forecast import (
    ForecastWindow,
    Placed,
    Walk,
    forecast_of,
    walk,
)
from billing.analytics.forecast import windows as forecast_windows
from billing.analytics.mrr import COUNTED_STATUSES
from billing.money import normalize_currency
from billing.rounding import RoundingMode
from kakin.services import analytics_reads as fast
from kakin.services import subscriptions as subscription_service
from kakin.services.analytics import (
    CurrencyBlock,
    Report,
    ReportQuery,
    checked_range,
    scopes,
)
from kakin.services.analytics_cache import Closed
from kakin.services.analytics_forecast_kept import KeptForecast, kept_walks
from kakin.services.analytics_forecast_outlooks import outlooks
from models.repositories import analytics as analytics_sql
from models.repositories import audit as audit_sql
from models.repositories import subscriptions as subscription_sql

log = logging.getLogger("kakin.analytics")

# The audit action the workflow records when a downgrade is scheduled for period end.
PLAN_CHANGE_SCHEDULED = "plan_change_scheduled"
STATUS_TIMEOUT = 5.0  # seconds a workflow has to answer the status query
QUERIES_AT_ONCE = 20  # status queries in flight at a time


@dataclass(frozen=True)
class ForecastRow:
    """One window of one currency, and what it was computed from.

    Attributes:
        recovery_rate: The currency's observed recovery rate over the report's range
            that open invoices were weighted by (``None``: none observed, they add 0).
        subscriptions: Active subscriptions in the currency that the forecast walked.
    """

    window: ForecastWindow
    recovery_rate: Decimal | None
    subscriptions: int


@dataclass(frozen=True)
class PlanChanges:
    """Downgrades scheduled at period end, as the workflows answered.

    Attributes:
        pending: Subscription id to the price its next period bills.
        unconfirmed: Subscriptions with a change scheduled whose workflow did not
            answer: the forecast bills them at their current plan.
    """

    pending: Mapping[str, str]
    unconfirmed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForecastReport(Report):
    unconfirmed_plan_changes: tuple[str, ...] = ()


# -- scheduled plan changes (from the workflows) -----------------------------------------


def plan_change_candidates(sessions: sessionmaker[Session]) -> list[str]:
    """Active subscriptions whose audit log shows a plan change scheduled in their
    current period (the others have no pending price)."""
    with sessions() as session:
        scheduled = audit_sql.last_action_times(
            session, entity_type="subscription", action=PLAN_CHANGE_SCHEDULED
        )
        if not scheduled:
            return []
        return [
            row.id
            for row in subscription_sql.subscriptions_in(
                session, COUNTED_STATUSES, ids=sorted(scheduled)
            )
            if row.current_period_start is None or scheduled[row.id] >= row.current_period_start
        ]


async def scheduled_plan_changes(client: Client | None, candidates: list[str]) -> PlanChanges:
    """The pending prices of the candidates (``plan_change_candidates``), asked of their
    workflows, at most ``QUERIES_AT_ONCE`` at a time; without a client (Temporal down)
    every candidate is unconfirmed."""
    if client is None or not candidates:
        return PlanChanges(pending={}, unconfirmed=tuple(candidates))
    gate = asyncio.Semaphore(QUERIES_AT_ONCE)

    async def ask(subscription_id: str) -> str | None:
        async with gate:
            view = await asyncio.wait_for(
                subscription_service.subscription_status(client, subscription_id), STATUS_TIMEOUT
            )
        return view.pending_price_id

    answers = await asyncio.gather(*(ask(i) for i in candidates), return_exceptions=True)
    pending, unconfirmed = {}, []
    for subscription_id, answer in zip(candidates, answers, strict=True):
        if isinstance(answer, BaseException):
            log.warning("no status from %s for the forecast: %s", subscription_id, answer)
            unconfirmed.append(subscription_id)
        elif answer:
            pending[subscription_id] = answer
    return PlanChanges(pending=pending, unconfirmed=tuple(unconfirmed))


# -- the report --------------------------------------------------------------------------


def forecast(
    sessions: sessionmaker[Session],
    query: ReportQuery,
    *,
    rounding: RoundingMode = RoundingMode.DOWN,
    plan_changes: PlanChanges | None = None,
    keep: bool = True,
) -> ForecastReport:
    """Billing expected for the rest of this month and for the next month, per currency
    (``ForecastRow``), from ``as_of``.

    The query's range is the one the recovery rate is observed over. ``rounding`` is
    the tax rounding invoices use (``KAKIN_TAX_ROUNDING``); ``plan_changes`` comes
    from ``scheduled_plan_changes`` (``None``: no downgrade is known). ``keep``: on
    PostgreSQL, each subscription's invoice dates are kept between requests
    (``analytics_forecast_kept``); ``False`` walks every subscription again (the same
    figures).
    """
    changes = plan_changes or PlanChanges(pending={})
    with sessions() as session:
        analytics_sql.without_jit(session)
        checked = checked_range(session, query)
        as_of = checked.as_of
        # Open invoices are as of now, which may be after the range: read up to both.
        cache = Closed(session, as_of)  # the ledger's mark, before any figure
        read = scopes(session, checked, max(checked.end, as_of))
        rates = {s.currency: fast.recovery_rate(session, s, checked.buckets, cache) for s in read}
        pending = {s.currency: fast.open_invoices(session, s, as_of, cache) for s in read}
        (_, _, month_end), (_, _, until) = forecast_windows(as_of, checked.time_zone)
        codes, planned = checked.currencies, changes.pending
        if keep and session.get_bind().dialect.name == "postgresql":
            kept = kept_walks(session, currencies=codes, as_of=as_of, month_end=month_end,
                              until=until, pending=planned, rounding=rounding)  # fmt: skip
        else:
            found = outlooks(session, currencies=codes, as_of=as_of, pending=planned,
                             rounding=rounding)  # fmt: skip
            walked = [walk(o, until) for o in found]
            kept = KeptForecast(walks=walked, placed=[],
                                subscriptions=Counter(w.currency for w in walked))  # fmt: skip
    walks: dict[str, list[Walk]] = defaultdict(list)
    for each in kept.walks:
        walks[each.currency].append(each)
    placed: dict[str, list[Placed]] = defaultdict(list)
    for counted in kept.placed:
        placed[counted.currency].append(counted)
    blocks = []
    for code in checked.currencies:
        rate = rates[code]
        normal = normalize_currency(code)
        windows = forecast_of(
            as_of=as_of,
            time_zone=checked.time_zone,
            walks=walks[normal],
            placed=placed[normal],
            open_invoices=pending[code],
            recovery_rates={code: rate},
        )
        shown = [w for w in windows if w.currency == code] or _empty_windows(
            as_of, checked.time_zone, code
        )
        count = kept.subscriptions.get(normal, 0)
        rows = tuple(ForecastRow(window=w, recovery_rate=rate, subscriptions=count)
                     for w in shown)  # fmt: skip
        blocks.append(CurrencyBlock(currency=code, rows=rows))
    return ForecastReport(name="forecast", range=checked, blocks=tuple(blocks),
                          unconfirmed_plan_changes=changes.unconfirmed)  # fmt: skip


def _empty_windows(as_of: datetime, time_zone: str, code: str) -> list[ForecastWindow]:
    """The two windows at zero, for a currency with nothing to forecast."""
    day = timedelta(days=1)
    month = bucket_range(from_=as_of, to=as_of + day, interval="month", time_zone=time_zone)[0]
    following = bucket_range(from_=month.end, to=month.end + day, interval="month",
                             time_zone=time_zone)[0]  # fmt: skip
    return [
        ForecastWindow(name="rest_of_month", start=as_of, end=month.end, currency=code),
        ForecastWindow(name="next_month", start=month.end, end=following.end, currency=code),
    ]
