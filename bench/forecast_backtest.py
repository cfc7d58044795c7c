"""Issue 13's forecast backtest: how far the forecast method is from what happened.

``python -m bench forecast [--tiny|--small|--full]`` seeds the same 24 months of history
as ``bench analytics`` (``bench.analytics_seed``), then for each of the last ``MONTHS``
complete months M (on the reporting calendar, Asia/Tokyo) replays the forecast **as of
M's first instant, from the entries booked before it only**, and compares its window
"rest of the month" (all of M) with the figures of M the revenue report gives:

- **recurring** (the invoices the forecast expects in M) against **invoiced** in M;
- **total** (recurring plus open invoices weighted by the recovery rate observed over
  the 12 months before M) against **collected** in M.

What the replay gathers (the subscription tables hold only today's state, so it is
rebuilt from the ledger): the subscriptions counted in MRR at M's start (the MRR sweep
over the entries booked before it), each one's latest invoice before it (its period,
from the invoice row: the next invoice is dated at its end, later ones a plan interval
apart) at the amount of its latest full-period invoice, or at its MRR times the months
of a period when its MRR moved since; the open invoices then, at the recovery rate
then. The method after that is ``billing.analytics.forecast.forecast``, as the service
runs it. What the ledger cannot tell in advance is the error: cancellations, upgrades
and new customers in M, and the failed payments of M's invoices (collected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.analytics_seed import seed
from bench.common import Figure, Report, postgres_database, progress
from billing.analytics.booking import book
from billing.analytics.buckets import Bucket, bucket_range
from billing.analytics.forecast import SubscriptionOutlook, forecast
from billing.analytics.ledger import MRR_KINDS, EntryKind
from billing.calendar import Interval, boundary, zone
from billing.rounding import RoundingMode, round_fraction
from kakin.services import analytics_reads as fast
from kakin.services import analytics_sweeps as sweeps
from models.repositories import analytics as analytics_sql
from models.tables import Invoice, LedgerRow, Price, Subscription

SIZES = {"tiny": 300, "small": 10_000, "full": 100_000}
MONTHS = 6  # the last complete months replayed
TIME_ZONE = "Asia/Tokyo"
_PERIODS_A_YEAR = {Interval.DAY: 365, Interval.WEEK: 52, Interval.MONTH: 12, Interval.YEAR: 1}


@dataclass(frozen=True)
class Replayed:
    """One month of one currency: the forecast as of its start, and what happened."""

    month: date
    currency: str
    recurring: int
    total: int
    invoiced: int
    collected: int
    subscriptions: int
    recovery_rate: Decimal | None

    @staticmethod
    def error(forecast_: int, actual: int) -> tuple[int, float | None]:
        """(forecast - actual, its share of actual in %; ``None`` when actual is 0)."""
        difference = forecast_ - actual
        return difference, (abs(difference) / actual * 100 if actual else None)


def _months(now: datetime) -> list[Bucket]:
    """The last ``MONTHS`` complete months before now's, and the one before each (for
    nothing but the range); on the reporting calendar."""
    every = bucket_range(from_=datetime(now.year - 2, now.month, 1, tzinfo=UTC), to=now,
                         interval="month", time_zone=TIME_ZONE)  # fmt: skip
    return list(every[-MONTHS - 1 : -1])


def _counted_at(session: Session, currency: str, moment: datetime) -> dict[str, tuple[int, int]]:
    """Subscription id -> (MRR, id of its latest MRR entry) of those counted in MRR at
    ``moment`` (active or past due), from the entries booked before it."""
    scope = analytics_sql.scope(session, currency, moment)
    rows = analytics_sql.mrr_rows(session, scope)
    special = [sweeps.mrr_row(b) for b in book(scope.special) if b.entry.kind in MRR_KINDS]
    state = sweeps.new_mrr_state()
    for _, position, subscription, customer, mrr, status, _ in sorted(
        [*rows, *special], key=lambda row: (row[0], row[1])
    ):
        state.apply(position, subscription, customer, mrr, status)
    return {
        subscription: (mrr, position)
        for subscription, (position, _, mrr, counted) in state.subscriptions.items()
        if counted and mrr > 0
    }


def _outlooks(session: Session, currency: str, moment: datetime) -> list[SubscriptionOutlook]:
    counted = _counted_at(session, currency, moment)
    plans = {
        sid: (Interval(interval), count, customer)
        for sid, interval, count, customer in session.execute(
            select(Subscription.id, Price.interval, Price.interval_count, Subscription.customer_id)
            .join(Price, Price.id == Subscription.price_id)
            .where(Price.currency == currency)
        )
    }
    booked = analytics_sql.BOOKED_AT
    invoices = session.execute(
        select(LedgerRow.subscription_id, LedgerRow.id, LedgerRow.amount, Invoice.period_start,
               Invoice.period_end)
        .join(Invoice, Invoice.id == LedgerRow.invoice_id)
        .where(LedgerRow.currency == currency, LedgerRow.kind == EntryKind.INVOICE_FINALIZED,
               booked < moment)
        .order_by(booked, LedgerRow.id)
    )  # fmt: skip
    latest: dict[str, tuple[datetime, datetime]] = {}
    full: dict[str, tuple[int, int]] = {}  # sid -> (entry id, amount) of its last full period
    for sid, entry_id, amount, start, end in invoices:
        if sid not in counted or sid not in plans:
            continue
        interval, count, _ = plans[sid]
        latest[sid] = (start, end)
        if boundary(start, interval, count, 1) == end:
            full[sid] = (entry_id, amount)
    found = []
    for sid, (_, end) in latest.items():
        interval, count, customer = plans[sid]
        mrr, mrr_entry = counted[sid]
        last = full.get(sid)
        if last is not None and last[0] > mrr_entry:
            amount = last[1]  # no MRR move since its last full period: the same again
        else:
            months = Fraction(12 * count, _PERIODS_A_YEAR[interval])
            amount = round_fraction(mrr * months, RoundingMode.HALF_EVEN)
        found.append(
            SubscriptionOutlook(subscription_id=sid, customer_id=customer, currency=currency,
                                anchor=end, interval=interval, interval_count=count,
                                next_period_index=0, next_invoice_amount=amount,
                                next_invoice_at=end)
        )  # fmt: skip
    return found


def replay(session: Session, month: Bucket, currency: str) -> Replayed:
    """The forecast of ``month`` as of its start, and its invoiced and collected."""
    moment = month.start
    before = analytics_sql.scope(session, currency, moment)
    year = bucket_range(from_=datetime(moment.year - 1, moment.month, 1, tzinfo=UTC),
                        to=moment, interval="month", time_zone=TIME_ZONE)  # fmt: skip
    rate = fast.recovery_rate(session, before, [b for b in year if b.end <= moment])
    outlooks = _outlooks(session, currency, moment)
    window = forecast(as_of=moment, time_zone=TIME_ZONE, subscriptions=outlooks,
                      open_invoices=fast.open_invoices(session, before, moment),
                      recovery_rates={currency: rate})[0]  # fmt: skip
    after = analytics_sql.scope(session, currency, month.end)
    actual = fast.revenue(session, after, [month])[0]
    return Replayed(month=month.start.astimezone(zone(TIME_ZONE)).date(), currency=currency,
                    recurring=window.recurring + window.metered, total=window.total,
                    invoiced=actual.invoiced, collected=actual.collected,
                    subscriptions=len(outlooks), recovery_rate=rate)  # fmt: skip


def _mape(errors: Sequence[float | None]) -> float | None:
    known = [e for e in errors if e is not None]
    return sum(known) / len(known) if known else None


def backtest(url: str, now: datetime) -> list[Replayed]:
    """Every currency's last ``MONTHS`` complete months, replayed."""
    from models.db import make_engine, make_session_factory

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return [
                replay(session, month, currency)
                for currency in analytics_sql.currencies(session)
                for month in _months(now)
            ]
    finally:
        engine.dispose()


def _line(row: Replayed) -> str:
    inv_err, inv_pct = Replayed.error(row.recurring, row.invoiced)
    col_err, col_pct = Replayed.error(row.total, row.collected)
    pct = "n/a" if inv_pct is None else f"{inv_pct:.1f}%"
    pct2 = "n/a" if col_pct is None else f"{col_pct:.1f}%"
    return (f"  {row.month:%Y-%m} {row.currency}: forecast {row.recurring:>12,} invoiced "
            f"{row.invoiced:>12,} error {inv_err:>+10,} ({pct}); with open invoices "
            f"{row.total:>12,} collected {row.collected:>12,} error {col_err:>+10,} "
            f"({pct2})")  # fmt: skip


async def run(size: str) -> Report:
    customers = SIZES[size]
    now = datetime.now(UTC)
    with postgres_database("forecast") as database:
        progress(f"seeding {customers:,} customers, 24 months of history")
        seeded = seed(database.url, customers, now)
        progress(f"  seeded in {seeded.seconds:,.1f} s; replaying the last {MONTHS} months")
        rows = backtest(database.url, now)
    for row in rows:
        progress(_line(row))
    figures = []
    details: dict[str, Any] = {"months": []}
    for currency in sorted({r.currency for r in rows}):
        mine = [r for r in rows if r.currency == currency]
        invoiced = _mape([Replayed.error(r.recurring, r.invoiced)[1] for r in mine])
        collected = _mape([Replayed.error(r.total, r.collected)[1] for r in mine])
        figures += [
            Figure(f"{currency} forecast vs invoiced, mean absolute % error", invoiced, "%",
                   notes=f"{len(mine)} months, as of each month's start"),
            Figure(f"{currency} forecast with open invoices vs collected, mean absolute % error",
                   collected, "%", notes=f"{len(mine)} months"),
        ]  # fmt: skip
    for r in rows:
        inv_err, inv_pct = Replayed.error(r.recurring, r.invoiced)
        col_err, col_pct = Replayed.error(r.total, r.collected)
        details["months"].append({
            "month": r.month.isoformat(), "currency": r.currency, "subscriptions": r.subscriptions,
            "forecast_invoiced": r.recurring, "invoiced": r.invoiced, "error": inv_err,
            "error_pct": None if inv_pct is None else round(inv_pct, 2),
            "forecast_collected": r.total, "collected": r.collected, "collected_error": col_err,
            "collected_error_pct": None if col_pct is None else round(col_pct, 2),
            "recovery_rate": None if r.recovery_rate is None else str(r.recovery_rate),
        })  # fmt: skip
    return Report(command="forecast", params={"size": size, "customers": customers,
                                              "months": MONTHS, "time_zone": TIME_ZONE},
                  figures=figures, details=details)  # fmt: skip
