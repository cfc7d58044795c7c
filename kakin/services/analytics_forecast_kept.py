"""The forecast's subscriptions kept between requests (PostgreSQL): each one's row, its
calendar and its invoice dates up to the next month's end, under the **version** of the
rows they were read from (the ``xmin``, the transaction that wrote the row version, of
the subscription, its customer, its price, its items with their prices and its
discounts: ``analytics_sql.subscription_versions``).

Each request reads the versions of every counted subscription (one narrow query) and
reads again, and walks again, only the rows whose version changed (nothing is assumed
about who writes them: the ledger sees neither a cancel at period end scheduled nor a
zone changed). The dates do not depend on the amounts, which are found on every request
by ``period_draft`` as ``outlooks`` does (a price, tax rate, coupon, credit or plan
change shows at once). Subscriptions sharing a draft are grouped and their dates counted
per window. So the figures are those of walking every subscription
(``analytics_forecast.forecast(..., keep=False)``; tests/analytics/
test_reports_forecast_kept.py), with no lag.

The state lives in the process (an API worker keeps its own), one per database.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import NamedTuple

from sqlalchemy.orm import Session

from billing.analytics.forecast import Placed, Walk, invoice_dates, walk, window_of
from billing.analytics.mrr import COUNTED_STATUSES
from billing.money import normalize_currency
from billing.rounding import RoundingMode
from kakin.services.analytics_forecast_outlooks import (
    NO_RATE,
    Stored,
    calendars,
    draft_key,
    first_calendar,
    next_amounts,
    outlook_of,
    stored_subscriptions,
)
from models.repositories import analytics as analytics_sql


class _Kept(NamedTuple):
    """One subscription as read at ``version`` (``analytics_sql.subscription_versions``).

    Attributes:
        order: Its place in the forecast's order (created, then id).
        key: Its ``draft_key`` without a credit balance or a plan change.
        calendar: ``first_calendar``'s (``None``: found from its invoices, each time).
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
    outlook = outlook_of(row, calendar, 0, NO_RATE)
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
            if row.id not in created:  # deleted and made again in between: read next time
                continue
            calendar = first_calendar(row)
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

    The amounts and run rates are found on each request (``next_amounts``, as ``outlooks``
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
        priced = next_amounts(session, rows, keys, calendar_of, as_of=as_of, pending=pending,
                         rounding=rounding)  # fmt: skip
        amounts = {e.row.id: amount for e, (amount, _) in zip(entries, priced, strict=True)}
        walks = []
        mine = {e.row.id for e in own}
        for number, (entry, (amount, per_day)) in enumerate(zip(entries, priced, strict=True)):
            if entry.row.id not in mine:
                continue  # a group's earliest: counted with its group
            if entry.dates is None:
                outlook = outlook_of(entry.row, calendar_of(number), amount, per_day)
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
