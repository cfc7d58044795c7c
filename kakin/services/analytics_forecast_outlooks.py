"""What the forecast reads and finds of each active subscription (``analytics_forecast``
says what; docs/metrics.md, Forecast): its stored row, its billing calendar, the licensed
amount of its next invoice (``invoice_drafts.period_draft``, shared by the subscriptions
with the same inputs) and its metered run rate, and from them its ``SubscriptionOutlook``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from sqlalchemy.orm import Session

from billing.analytics.forecast import SubscriptionOutlook
from billing.analytics.mrr import COUNTED_STATUSES
from billing.calendar import Interval, boundary
from billing.rounding import RoundingMode
from kakin.services.invoice_drafts import current_usage, period_draft
from models.repositories import analytics as analytics_sql
from models.repositories import invoices as invoice_sql
from models.repositories.common import find
from models.tables import Price, Subscription

# About how long an interval is, to guess which period index a stored period has.
_APPROX_DAYS = {Interval.DAY: 1.0, Interval.WEEK: 7.0, Interval.MONTH: 30.436875,
                Interval.YEAR: 365.2425}  # fmt: skip


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


def first_calendar(row: Stored) -> tuple[datetime, int, str] | None:
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
    found = [first_calendar(row) for row in rows]
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


NO_RATE = Decimal(0)


def next_amounts(
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
        rate = _run_rate(session, whole, as_of) if row.metered and whole else NO_RATE
        found.append((amount, rate))
    return found


def outlook_of(
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
    priced = next_amounts(session, rows, keys, found.__getitem__, as_of=as_of, pending=pending,
                     rounding=rounding)  # fmt: skip
    return [
        outlook_of(row, calendar, amount, per_day)
        for row, calendar, (amount, per_day) in zip(rows, found, priced, strict=True)
    ]
