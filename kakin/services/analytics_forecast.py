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

**Kept between requests** (PostgreSQL, ``kept_walks``): each subscription's row, its
calendar and its invoice dates up to the next month's end, under the **version** of
the rows they were read from (the ``xmin`` of the subscription, its customer, price,
items and discounts: ``analytics_sql.subscription_versions``). Each request reads the
versions of every counted subscription (one narrow query) and reads again, and walks
again, only the rows whose version changed; the dates do not depend on the amounts,
which are found on every request by ``period_draft`` as above (a price, tax rate,
coupon, credit or plan change shows at once). Subscriptions sharing a draft are
grouped and their dates counted per window. So a report is what walking every
subscription gives (``forecast(..., keep=False)``; tests/analytics/
test_reports_forecast_kept.py), with no lag.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from billing.analytics.buckets import bucket_range
from billing.analytics.forecast import (
    ForecastWindow,
    Placed,
    SubscriptionOutlook,
    Walk,
    forecast_of,
    invoice_dates,
    walk,
    window_of,
)
from billing.analytics.forecast import windows as forecast_windows
from billing.analytics.mrr import COUNTED_STATUSES
from billing.calendar import Interval, boundary
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
from kakin.services.invoice_drafts import current_usage, period_draft
from models.repositories import analytics as analytics_sql
from models.repositories import audit as audit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import find
from models.tables import Price, Subscription

log = logging.getLogger("kakin.analytics")

# The audit action the workflow records when a downgrade is scheduled for period end.
PLAN_CHANGE_SCHEDULED = "plan_change_scheduled"
STATUS_TIMEOUT = 5.0  # seconds a workflow has to answer the status query
QUERIES_AT_ONCE = 20  # status queries in flight at a time
# About how long an interval is, to guess which period index a stored period has.
_APPROX_DAYS = {Interval.DAY: 1.0, Interval.WEEK: 7.0, Interval.MONTH: 30.436875,
                Interval.YEAR: 365.2425}  # fmt: skip


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


# -- each subscription's outlook ---------------------------------------------------------


class Stored(NamedTuple):
    """What the forecast reads of one subscription (``analytics_sql.stored_subscriptions``),
    times in UTC; ``licensed_items`` are the non-metered items' ``(price id, quantity)``,
    sorted. A named tuple: the forecast makes one per active subscription, and a frozen
    dataclass costs several times as much to make."""

    id: str
    customer_id: str
    price_id: str
    quantity: int
    billing_cycle_anchor: datetime | None
    trial_end: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime
    cancel_at_period_end: bool
    interval: Interval
    interval_count: int
    currency: str
    time_zone: str
    tax_rate_ids: tuple[str, ...]
    discounted: bool
    licensed_items: tuple[tuple[str, int], ...] = ()
    metered: bool = False


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def stored_subscriptions(
    session: Session, currencies: tuple[str, ...] | None, ids: Sequence[str] | None = None
) -> list[Stored]:
    """Every subscription the forecast walks (``active`` or ``past_due``, with a period,
    in ``currencies``: ``None``, any; of ``ids`` if given), oldest first, in two queries."""
    licensed: dict[str, list[tuple[str, int]]] = defaultdict(list)
    metered: set[str] = set()
    for subscription_id, price_id, quantity, is_metered in analytics_sql.subscription_items(
        session, COUNTED_STATUSES, ids
    ):
        if is_metered:
            metered.add(subscription_id)
        else:
            licensed[subscription_id].append((price_id, quantity))
    found = []
    for row in analytics_sql.stored_subscriptions(session, COUNTED_STATUSES, ids):
        (id_, customer_id, price_id, quantity, anchor, trial_end, start, end, cancels,
         interval, count, currency, time_zone, rates, discounted) = row  # fmt: skip
        if currencies is not None and currency not in currencies:
            continue
        assert end is not None  # the query reads only subscriptions with a period
        found.append(
            Stored(
                id=id_,
                customer_id=customer_id,
                price_id=price_id,
                quantity=quantity,
                billing_cycle_anchor=_utc(anchor),
                trial_end=_utc(trial_end),
                current_period_start=_utc(start),
                current_period_end=end.astimezone(UTC),
                cancel_at_period_end=bool(cancels),
                interval=Interval(interval),
                interval_count=count,
                currency=currency,
                time_zone=time_zone or "UTC",
                tax_rate_ids=tuple(rates or ()),
                discounted=bool(discounted),
                licensed_items=tuple(sorted(licensed.get(id_, ()))),
                metered=id_ in metered,
            )
        )
    return found


def _calendar(
    subscription: Stored, anchors: Iterable[datetime | None]
) -> tuple[datetime, int, str] | None:
    """``(anchor, index, zone)`` with ``boundary(anchor, ..., index) == current_period_end``
    for the first of ``anchors`` that gives one, on the customer's zone or UTC (what
    subscriptions started before zones were followed keep); ``None``: none does."""
    end = subscription.current_period_end
    interval, count = subscription.interval, subscription.interval_count
    zones = list(dict.fromkeys([subscription.time_zone, "UTC"]))
    for anchor in dict.fromkeys(c for c in anchors if c is not None and c < end):
        guess = round((end - anchor) / timedelta(days=_APPROX_DAYS[interval] * count))
        for time_zone in zones:
            for index in (guess, guess - 1, guess + 1):
                if index >= 1 and boundary(anchor, interval, count, index,
                                           time_zone=time_zone) == end:  # fmt: skip
                    return anchor, index, time_zone
    return None


# Each subscription's calendar from its requested start or trial end, by what it was
# found from (a ``Stored`` is every input of ``_calendar``): a renewal changes the
# stored period end, hence the key, so a kept calendar is never stale. Bounded: cleared
# when full (a forecast walks every active subscription once).
_CALENDARS: dict[Stored, tuple[datetime, int, str] | None] = {}
_CALENDARS_KEPT = 500_000


def _first_calendar(row: Stored) -> tuple[datetime, int, str] | None:
    """``_calendar`` from the requested start or the trial's end, remembered."""
    if row in _CALENDARS:
        return _CALENDARS[row]
    if len(_CALENDARS) >= _CALENDARS_KEPT:
        _CALENDARS.clear()
    fits = _CALENDARS[row] = _calendar(row, (row.billing_cycle_anchor, row.trial_end))
    return fits


def calendars(session: Session, rows: Sequence[Stored]) -> list[tuple[datetime, int, str]]:
    """Each subscription's ``(anchor, index, zone)``: ``boundary(anchor, ..., index)`` is
    its ``current_period_end``, so later invoices fall where the workflow will date
    them (a month-end anchor keeps its day).

    The anchor is the requested start, the trial's end, the first period invoice's
    start (the workflow's anchor unless dunning or a pause moved it) or the current
    period's start, the first that fits. None fitting: the next invoice opens period
    0 of a calendar anchored at it, so its usage is not forecast. The first period
    invoices are read only for the subscriptions the first two do not fit.
    """
    found = [_first_calendar(row) for row in rows]
    missing = [row.id for row, fits in zip(rows, found, strict=True) if fits is None]
    firsts = invoice_sql.first_period_starts(session, missing) if missing else {}
    calendars = []
    for row, fits in zip(rows, found, strict=True):
        if fits is None:
            anchors = (row.billing_cycle_anchor, row.trial_end, firsts.get(row.id),
                       row.current_period_start)  # fmt: skip
            fits = _calendar(row, anchors)
        calendars.append(fits or (row.current_period_end, 0, row.time_zone))
    return calendars


def _run_rate(session: Session, subscription: Subscription, as_of: datetime) -> Decimal:
    """The metered items' cost so far in the current period, per day elapsed."""
    start = subscription.current_period_start
    if start is None or as_of <= start:
        return Decimal(0)
    used = sum(line.amount for line in current_usage(session, subscription))
    days = Fraction((as_of - start) // timedelta(microseconds=1), 86_400_000_000)
    exact = Fraction(used) / days
    return Decimal(exact.numerator) / Decimal(exact.denominator)


def draft_key(
    subscription: Stored, plan_id: str, with_credit: set[str]
) -> tuple[object, ...] | None:
    """What a next invoice's licensed total depends on (see ``Drafts``); ``None``: its
    own (a coupon, or a customer with a credit balance)."""
    if subscription.discounted or subscription.customer_id in with_credit:
        return None
    return (plan_id, subscription.quantity, subscription.licensed_items,
            subscription.tax_rate_ids, subscription.currency)  # fmt: skip


class Drafts:
    """The licensed total of a next invoice (``period_draft``'s), computed once per
    set of inputs it depends on (``draft_key``).

    Without usage lines, a draft's total depends only on the plan, the quantity, the
    non-metered items, the tax rates, the coupons due and the customer's credit
    balance; the period's dates only label its lines. Subscriptions with a coupon or a
    customer with a credit balance get a draft of their own; the others share the one
    of the first subscription with the same plan, items and rates.
    """

    def __init__(self, session: Session, rounding: RoundingMode) -> None:
        self.session, self.rounding = session, rounding
        self.totals: dict[tuple[object, ...], int] = {}

    def total(self, key: tuple[object, ...] | None, subscription: Subscription | None,
              plan: Price | None, start: datetime, end: datetime) -> int:  # fmt: skip
        """The total for ``key``; ``subscription`` (loaded) drafts it when not known yet."""
        if key is not None and key in self.totals:
            return self.totals[key]
        assert subscription is not None, "a draft not known yet needs its subscription"
        draft = period_draft(self.session, subscription, period_start=start, period_end=end,
                             usage_period=None, rounding=self.rounding, plan=plan)  # fmt: skip
        if key is not None:
            self.totals[key] = draft.totals.total
        return draft.totals.total


_NO_RATE = Decimal(0)


def _priced(
    session: Session,
    rows: Sequence[Stored],
    keys: Sequence[tuple[object, ...] | None],
    calendar_of: Callable[[int], tuple[datetime, int, str]],
    *,
    as_of: datetime,
    pending: Mapping[str, str],
    rounding: RoundingMode,
) -> list[tuple[int, Decimal]]:
    """``(next invoice's licensed amount, metered run rate per day)`` of each of ``rows``
    (``keys``: their ``draft_key``; ``calendar_of(i)``: the calendar of ``rows[i]``,
    asked only to label a draft).

    Read as plain rows: only the subscriptions whose draft is not shared yet, or with
    metered items (their run rate reads usage), are loaded whole (with what
    ``period_draft`` reads), in one query.
    """
    drafted: set[tuple[object, ...]] = set()
    needed = set()
    for row, key in zip(rows, keys, strict=True):
        if key is None or key not in drafted or row.metered:
            needed.add(row.id)
        if key is not None:
            drafted.add(key)
    loaded = {
        s.id: s for s in analytics_sql.subscriptions_in(session, COUNTED_STATUSES, ids=needed)
    }
    drafts = Drafts(session, rounding)
    found = []
    for number, (row, key) in enumerate(zip(rows, keys, strict=True)):
        amount = drafts.totals.get(key) if key is not None else None
        whole = loaded.get(row.id) if amount is None or row.metered else None
        if amount is None:  # drafted now: its period's end labels its lines
            price_id = pending.get(row.id)
            plan = find(session, Price, price_id) if price_id else None
            anchor, index, time_zone = calendar_of(number)
            # The next period starts where the current one ends (period index ``index``).
            end = boundary(anchor, row.interval, row.interval_count, index + 1,
                           time_zone=time_zone)  # fmt: skip
            amount = drafts.total(key, whole, plan, row.current_period_end, end)
        rate = _run_rate(session, whole, as_of) if row.metered and whole else _NO_RATE
        found.append((amount, rate))
    return found


def _outlook(
    row: Stored, calendar: tuple[datetime, int, str], amount: int, per_day: Decimal
) -> SubscriptionOutlook:
    anchor, index, time_zone = calendar
    start = row.current_period_end  # the next period's start (period index ``index``)
    return SubscriptionOutlook(
        subscription_id=row.id,
        customer_id=row.customer_id,
        currency=row.currency,
        anchor=anchor,
        interval=row.interval,
        interval_count=row.interval_count,
        time_zone=time_zone,
        next_period_index=index,
        next_invoice_at=start,  # boundary(anchor, ..., index), as calendars found
        next_invoice_amount=amount,
        metered_per_day=per_day,
        cancel_at=start if row.cancel_at_period_end else None,
    )


def outlooks(
    session: Session,
    *,
    currencies: tuple[str, ...],
    as_of: datetime,
    pending: Mapping[str, str],
    rounding: RoundingMode,
) -> list[SubscriptionOutlook]:
    """The outlook of every active subscription in ``currencies`` with a period."""
    rows = stored_subscriptions(session, currencies)
    found = calendars(session, rows)
    with_credit = analytics_sql.customers_with_credit(session)
    keys = [draft_key(row, pending.get(row.id) or row.price_id, with_credit) for row in rows]
    priced = _priced(session, rows, keys, found.__getitem__, as_of=as_of, pending=pending,
                     rounding=rounding)  # fmt: skip
    return [
        _outlook(row, calendar, amount, per_day)
        for row, calendar, (amount, per_day) in zip(rows, found, priced, strict=True)
    ]


# -- each subscription's invoice dates, kept between requests ------------------------------


class _Kept(NamedTuple):
    """One subscription as read at ``version`` (``analytics_sql.subscription_versions``).

    Attributes:
        order: Its place in the forecast's order (created, then id).
        key: Its ``draft_key`` without a credit balance or a plan change.
        calendar: ``_first_calendar``'s (``None``: found from its invoices, each time).
        dates: ``(date, usage days)`` of its invoices before the state's ``until``
            (``None``: walked on each request: metered, or its calendar not kept).
    """

    version: str
    row: Stored
    order: tuple[datetime, str]
    key: tuple[object, ...] | None
    calendar: tuple[datetime, int, str] | None
    dates: tuple[tuple[datetime, Fraction], ...] | None


class _Group:
    """Kept subscriptions of one currency and ``draft_key`` with their dates kept: all
    their invoices are at that key's draft, so a request counts the dates per window
    (``billing.analytics.forecast.window_of``) instead of walking each subscription."""

    def __init__(self) -> None:
        self.members: dict[str, _Kept] = {}
        self.soon: list[datetime] = []  # the dates before the month's end (window 0 from as_of)
        self.later = 0  # the dates from the month's end on (window 1: all before ``until``)
        self.ordered = True
        self.first: _Kept | None = None  # the earliest member, found when asked

    def add(self, entry: _Kept, month_end: datetime) -> None:
        assert entry.dates is not None
        self.members[entry.row.id] = entry
        for at, _ in entry.dates:
            if at < month_end:
                self.soon.append(at)
                self.ordered = False
            else:
                self.later += 1
        if self.first is not None and entry.order < self.first.order:
            self.first = entry

    def remove(self, entry: _Kept, month_end: datetime) -> None:
        assert entry.dates is not None
        del self.members[entry.row.id]
        for at, _ in entry.dates:
            if at < month_end:
                self.soon.remove(at)  # (one equal date: only their count matters)
            else:
                self.later -= 1
        if self.first is entry:
            self.first = None

    def counts(self, as_of: datetime) -> tuple[int, int]:
        """The invoices in window 0 (``[as_of, month end)``) and in window 1."""
        if not self.ordered:
            self.soon.sort()
            self.ordered = True
        return len(self.soon) - bisect.bisect_left(self.soon, as_of), self.later

    def earliest(self, excluded: Collection[str]) -> _Kept | None:
        """Its earliest member (``order``) not in ``excluded``."""
        if self.first is None and self.members:
            self.first = min(self.members.values(), key=_order)
        if self.first is None or self.first.row.id not in excluded:
            return self.first
        rest = [m for m in self.members.values() if m.row.id not in excluded]
        return min(rest, key=_order) if rest else None


def _order(entry: _Kept) -> tuple[datetime, str]:
    return entry.order


@dataclass
class _Walked:
    """One database's subscriptions as last read, for invoices before ``until`` (the
    next month's end; ``month_end``: this month's).

    Attributes:
        groups: By (currency, ``draft_key``), the kept ones with their dates kept.
        own: The others (walked on each request, as ``outlooks`` does).
        by_customer: The grouped ones per customer (a credit balance takes them out).
    """

    until: datetime
    month_end: datetime
    kept: dict[str, _Kept] = dataclasses.field(default_factory=dict)
    groups: dict[tuple[str, object], _Group] = dataclasses.field(default_factory=dict)
    own: set[str] = dataclasses.field(default_factory=set)
    by_customer: dict[str, set[str]] = dataclasses.field(default_factory=dict)

    def add(self, entry: _Kept) -> None:
        row = entry.row
        self.kept[row.id] = entry
        if entry.dates is None or entry.key is None:
            self.own.add(row.id)
            return
        self.groups.setdefault((row.currency, entry.key), _Group()).add(entry, self.month_end)
        self.by_customer.setdefault(row.customer_id, set()).add(row.id)

    def remove(self, subscription_id: str) -> None:
        entry = self.kept.pop(subscription_id)
        if subscription_id in self.own:
            self.own.discard(subscription_id)
            return
        where = (entry.row.currency, entry.key)
        group = self.groups[where]
        group.remove(entry, self.month_end)
        if not group.members:
            del self.groups[where]
        mine = self.by_customer[entry.row.customer_id]
        mine.discard(subscription_id)
        if not mine:
            del self.by_customer[entry.row.customer_id]


# Per database, the latest state (a new month re-walks the kept rows).
_WALKED: dict[str, _Walked] = {}
_WALKED_LOCK = threading.Lock()


def forget_kept() -> None:
    """Forgets every kept subscription (tests, and a database restored from a backup)."""
    with _WALKED_LOCK:
        _WALKED.clear()


def _dates(row: Stored, calendar: tuple[datetime, int, str] | None,
           until: datetime) -> tuple[tuple[datetime, Fraction], ...] | None:  # fmt: skip
    """Its invoice dates before ``until`` (``invoice_dates``: they do not depend on the
    amount, 0 here), or ``None`` when they are walked on each request."""
    if calendar is None or row.metered:
        return None
    outlook = _outlook(row, calendar, 0, _NO_RATE)
    return tuple((at, used) for _, at, used in invoice_dates(outlook, until))


def _refreshed(session: Session, versions: Mapping[str, str], month_end: datetime,
               until: datetime) -> _Walked:  # fmt: skip
    """The database's state brought to ``versions`` (call with ``_WALKED_LOCK`` held):
    only the subscriptions whose version changed (or new ones) are read again, and
    their dates walked; those gone are dropped."""
    database = str(session.get_bind().engine.url)
    state = _WALKED.get(database)
    if state is None or (state.until, state.month_end) != (until, month_end):
        fresh = _Walked(until=until, month_end=month_end)
        for entry in state.kept.values() if state is not None else ():  # a new month
            fresh.add(entry._replace(dates=_dates(entry.row, entry.calendar, until)))
        state = _WALKED[database] = fresh
    kept = state.kept
    changed = [i for i, v in versions.items() if (k := kept.get(i)) is None or k.version != v]
    for gone in [i for i in kept if i not in versions or i in changed]:
        state.remove(gone)
    if changed:
        # Read after their versions: each row is at least as recent as its version,
        # so one changed in between differs from it next time and is read again.
        created = analytics_sql.created_times(session, changed)
        for row in stored_subscriptions(session, None, changed):
            calendar = _first_calendar(row)
            state.add(_Kept(version=versions[row.id], row=row, order=(created[row.id], row.id),
                            key=draft_key(row, row.price_id, set()), calendar=calendar,
                            dates=_dates(row, calendar, until)))  # fmt: skip
    return state


class KeptForecast(NamedTuple):
    """``kept_walks``: the subscriptions walked on this request, the invoices of the
    others counted per window, and how many subscriptions each currency has."""

    walks: list[Walk]
    placed: list[Placed]
    subscriptions: dict[str, int]


def kept_walks(
    session: Session,
    *,
    currencies: tuple[str, ...],
    as_of: datetime,
    month_end: datetime,
    until: datetime,
    pending: Mapping[str, str],
    rounding: RoundingMode,
) -> KeptForecast:
    """What ``walk(outlook, until)`` of every ``outlooks`` subscription adds up to, from
    the kept rows and dates (``_refreshed``).

    The amounts and run rates are found on each request (``_priced``, as ``outlooks``
    does), so a price, tax rate, coupon or credit change shows at once: for a group of
    subscriptions sharing a draft, once, from its earliest member (the one ``outlooks``
    drafts it from). Walked again on each request: the metered ones, those whose
    calendar is found from their invoices, those with a coupon, a credit balance or a
    plan change. PostgreSQL only (row versions).
    """
    versions = analytics_sql.subscription_versions(session, COUNTED_STATUSES)
    with_credit = analytics_sql.customers_with_credit(session)
    with _WALKED_LOCK:
        state = _refreshed(session, versions, month_end, until)
        # Grouped, but drafted otherwise on this request: taken out of their groups.
        excluded = {i for i in pending if i in state.kept and i not in state.own}
        for customer in with_credit & state.by_customer.keys():
            excluded |= state.by_customer[customer]
        groups = [(g, g.earliest(excluded)) for (code, _), g in state.groups.items()
                  if code in currencies]  # fmt: skip
        own = [state.kept[i] for i in state.own | excluded
               if state.kept[i].row.currency in currencies]  # fmt: skip
        entries = sorted([*own, *(first for _, first in groups if first is not None)],
                         key=_order)  # fmt: skip
        rows = [e.row for e in entries]
        unkept = [e.row for e in entries if e.calendar is None]
        found = dict(zip((r.id for r in unkept), calendars(session, unkept), strict=True))

        def calendar_of(number: int) -> tuple[datetime, int, str]:
            return entries[number].calendar or found[rows[number].id]

        keys = [draft_key(r, pending.get(r.id) or r.price_id, with_credit) for r in rows]
        priced = _priced(session, rows, keys, calendar_of, as_of=as_of, pending=pending,
                         rounding=rounding)  # fmt: skip
        amounts = {e.row.id: amount for e, (amount, _) in zip(entries, priced, strict=True)}
        walks = []
        mine = {e.row.id for e in own}
        for number, (entry, (amount, per_day)) in enumerate(zip(entries, priced, strict=True)):
            if entry.row.id not in mine:
                continue  # a group's earliest: counted with its group
            if entry.dates is None:
                outlook = _outlook(entry.row, calendar_of(number), amount, per_day)
                walks.append(walk(outlook, until))
            else:
                # Not metered (per day 0), and the service's outlooks have no recurring
                # amount nor scheduled change (``invoice_amount``): every invoice is at
                # the next one's amount.
                invoices = tuple((at, amount, used) for at, used in entry.dates)
                walks.append(Walk(normalize_currency(entry.row.currency), 0, invoices))
        placed, counted = [], Counter(w.currency for w in walks)
        for group, first in groups:
            if first is None:
                continue  # every member taken out
            soon, later = group.counts(as_of)
            out = [group.members[i] for i in excluded if i in group.members]
            for entry in out:  # taken out: walked above, not counted here
                assert entry.dates is not None
                for at, _ in entry.dates:
                    window = window_of(at, as_of, month_end, until)
                    soon -= window == 0
                    later -= window == 1
            code = normalize_currency(first.row.currency)
            amount = amounts[first.row.id]
            placed += [Placed(code, 0, amount, soon), Placed(code, 1, amount, later)]
            counted[code] += len(group.members) - len(out)
        return KeptForecast(walks=walks, placed=placed, subscriptions=dict(counted))


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
    (``kept_walks``); ``False`` walks every subscription again (the same figures).
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
