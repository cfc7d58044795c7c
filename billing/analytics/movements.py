"""MRR and its movements per bucket and currency, classified per customer.

A subscription's MRR at a moment is the ``mrr_after`` of its latest entry (in
recording order) among the MRR entries booked before that moment
(``billing.analytics.booking``); a customer's MRR in a currency is the sum of their
subscriptions' in that currency. Currencies are never added together.

Each bucket compares every customer's MRR at its start with their MRR at its end,
**net per customer per bucket** (ChartMogul classifies each event; a customer who
upgrades and downgrades in one bucket would then show both expansion and
contraction, and one who cancels and comes back the same day both churn and
reactivation: we report only what changed between the bucket's ends):

- 0 -> above 0: **new** the first time the customer has MRR in that currency,
  **reactivation** after that;
- up: **expansion**; down to above 0: **contraction**; above 0 -> 0: **churn**.

So ``start + new + expansion + reactivation - contraction - churn = end`` holds
exactly, in integers, for every bucket and currency.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from billing.analytics.booking import Booked, book
from billing.analytics.buckets import Bucket
from billing.analytics.ledger import MRR_KINDS, LedgerEntry
from billing.analytics.mrr import COUNTED_STATUSES
from billing.money import normalize_currency


@dataclass(frozen=True)
class MrrBucket:
    """MRR movements of one bucket in one currency (amounts in minor units).

    Attributes:
        customers_start: Customers with MRR above 0 at the start (and ``_end``).
        new_customers, reactivated_customers, churned_customers: How many customers
            moved so (expansion and contraction are not counted in customers).
        subscriptions_end: Subscriptions ``active`` or ``past_due`` at the end.
        corrections: Ids of the corrections reflected in this bucket's entries.
    """

    bucket: Bucket
    currency: str
    start: int = 0
    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churn: int = 0
    reactivation: int = 0
    end: int = 0
    customers_start: int = 0
    customers_end: int = 0
    new_customers: int = 0
    reactivated_customers: int = 0
    churned_customers: int = 0
    subscriptions_end: int = 0
    corrections: tuple[int, ...] = field(default=())

    @property
    def arr(self) -> int:
        return self.end * 12


@dataclass
class _Subscription:
    position: int
    customer: tuple[str, str]  # (customer id, currency)
    mrr: int
    counted: bool


@dataclass
class _Sweep:
    """The running state, entry by entry in booking order."""

    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    customer_mrr: Counter[tuple[str, str]] = field(default_factory=Counter)
    had_mrr: set[tuple[str, str]] = field(default_factory=set)
    total: Counter[str] = field(default_factory=Counter)
    customers: Counter[str] = field(default_factory=Counter)
    active: Counter[str] = field(default_factory=Counter)

    def touched_keys(self, booked: Booked) -> list[tuple[str, str]]:
        entry = booked.entry
        keys = [(entry.customer_id, entry.currency)]
        old = self.subscriptions.get(entry.subscription_id)
        if old is not None and old.customer != keys[0]:
            keys.append(old.customer)
        return keys

    def apply(self, booked: Booked) -> None:
        entry = booked.entry
        old = self.subscriptions.get(entry.subscription_id)
        if old is not None and old.position > booked.position:
            return  # a later-recorded entry already set this subscription's state
        counted = entry.status_after in COUNTED_STATUSES
        if old is not None:
            self._add(old.customer, -old.mrr)
            self.active[old.customer[1]] -= old.counted
            if not entry.status_after:  # no status given: it did not change
                counted = old.counted
        key = (entry.customer_id, entry.currency)
        self.subscriptions[entry.subscription_id] = _Subscription(
            position=booked.position, customer=key, mrr=entry.mrr_after, counted=counted
        )
        self._add(key, entry.mrr_after)
        self.active[entry.currency] += counted

    def _add(self, key: tuple[str, str], delta: int) -> None:
        before = self.customer_mrr[key]
        after = before + delta
        self.customer_mrr[key] = after
        self.total[key[1]] += delta
        self.customers[key[1]] += (after > 0) - (before > 0)
        if after > 0:
            self.had_mrr.add(key)


def mrr_movements(
    entries: Iterable[LedgerEntry],
    *,
    buckets: Sequence[Bucket],
    known_at: datetime | None = None,
    currency: str | None = None,
) -> tuple[MrrBucket, ...]:
    """MRR at each bucket's ends and the movements between, per currency.

    Args:
        entries: The ledger (any order; entries of every kind may be passed).
        buckets: Contiguous buckets (``billing.analytics.buckets.bucket_range``).
        known_at: Reproduce the figures as known at that moment (see booking).
        currency: Only this currency (``None``: every currency seen before the end).

    Returns:
        One ``MrrBucket`` per currency and bucket, by currency then time.
    """
    booked = [b for b in book(entries, known_at=known_at) if b.entry.kind in MRR_KINDS]
    if not buckets:
        return ()
    horizon = buckets[-1].end
    currencies = sorted(
        {b.entry.currency for b in booked if b.booked_at < horizon}
        if currency is None
        else {normalize_currency(currency)}
    )
    sweep = _Sweep()
    index = 0
    while index < len(booked) and booked[index].booked_at < buckets[0].start:
        sweep.apply(booked[index])
        index += 1
    rows: dict[str, list[MrrBucket]] = {code: [] for code in currencies}
    for bucket in buckets:
        start_total, start_customers = Counter(sweep.total), Counter(sweep.customers)
        first_seen: dict[tuple[str, str], tuple[int, bool]] = {}
        corrections: dict[str, set[int]] = {code: set() for code in currencies}
        while index < len(booked) and booked[index].booked_at < bucket.end:
            item = booked[index]
            for key in sweep.touched_keys(item):
                first_seen.setdefault(key, (sweep.customer_mrr[key], key in sweep.had_mrr))
            sweep.apply(item)
            if item.correction and item.entry.currency in corrections:
                corrections[item.entry.currency].add(item.correction)
            index += 1
        for code in currencies:
            moves = _classify(
                {k: v for k, v in first_seen.items() if k[1] == code}, sweep.customer_mrr
            )
            rows[code].append(
                MrrBucket(
                    bucket=bucket,
                    currency=code,
                    start=start_total[code],
                    end=sweep.total[code],
                    customers_start=start_customers[code],
                    customers_end=sweep.customers[code],
                    subscriptions_end=sweep.active[code],
                    corrections=tuple(sorted(corrections[code])),
                    **moves,
                )
            )
    return tuple(row for code in currencies for row in rows[code])


def _classify(
    first_seen: dict[tuple[str, str], tuple[int, bool]], now: Counter[tuple[str, str]]
) -> Counter[str]:
    """The bucket's movements by ``MrrBucket`` field name (``new``, ``churned_customers``...)."""
    moves = Counter[str]()
    for key, (before, had_mrr) in first_seen.items():
        after = now[key]
        if before == 0 and after > 0:
            kind = "reactivation" if had_mrr else "new"
            moves[kind] += after
            moves[f"{'reactivated' if had_mrr else 'new'}_customers"] += 1
        elif before > 0 and after == 0:
            moves["churn"] += before
            moves["churned_customers"] += 1
        elif after > before:
            moves["expansion"] += after - before
        elif after < before:
            moves["contraction"] += before - after
    return moves
