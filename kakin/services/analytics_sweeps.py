"""One-pass sweeps over plain ledger rows: the MRR movements, the dunning episodes and
the receivables aging of one currency, exactly as ``billing.analytics`` defines them.

``billing.analytics`` (the definition) books ``LedgerEntry`` objects and follows them
one ``Booked`` at a time: clear, and about 10-25 us an entry. A report at the bench's
small size follows 30,000-40,000 entries per currency, so the service feeds these
sweeps plain tuples (``models.repositories.analytics``, read through the driver) in
booking order instead, with only the fields each figure reads. Each sweep follows
its definition step for step (named in each function); ``tests/analytics/
test_reports_fast.py`` holds them equal on hand-made and random ledgers.

Every row starts ``(booked_at, position, ...)`` (``billing.analytics.booking``'s
order) and ends with ``correction``: the id of the correction in force, 0 if none.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from billing.analytics.booking import Booked
from billing.analytics.buckets import Bucket
from billing.analytics.dunning import DunningBucket, Tally, dunning_bucket
from billing.analytics.ledger import EntryKind
from billing.analytics.movements import MrrBucket
from billing.analytics.mrr import COUNTED_STATUSES
from billing.analytics.receivables import BANDS, Aging, OpenInvoice, band_of
from models.repositories.analytics import DunningRow, InvoiceRow, MrrRow


def mrr_row(item: Booked) -> MrrRow:
    entry = item.entry
    return (item.booked_at, item.position, entry.subscription_id, entry.customer_id,
            entry.mrr_after, entry.status_after, item.correction)  # fmt: skip


def dunning_row(item: Booked) -> DunningRow:
    e = item.entry
    return (item.booked_at, item.position, str(e.kind), e.invoice_id, e.occurred_at, e.amount,
            e.attempt, e.decline_code, e.dunning_step, item.correction)  # fmt: skip


# -- MRR movements ------------------------------------------------------------------------


class _MrrState:
    """``billing.analytics.movements._Sweep`` for one currency, customers by id."""

    __slots__ = ("active", "customer_mrr", "customers", "had_mrr", "subscriptions", "total")

    def __init__(self) -> None:
        # subscription id -> (position, customer id, MRR, counted)
        self.subscriptions: dict[str, tuple[int, str, int, bool]] = {}
        self.customer_mrr: dict[str, int] = {}
        self.had_mrr: set[str] = set()
        self.total = self.customers = self.active = 0

    def copy(self) -> _MrrState:
        """An independent copy (the values are immutable tuples and ints)."""
        twin = _MrrState()
        twin.subscriptions = dict(self.subscriptions)
        twin.customer_mrr = dict(self.customer_mrr)
        twin.had_mrr = set(self.had_mrr)
        twin.total, twin.customers, twin.active = self.total, self.customers, self.active
        return twin

    def apply(self, position: int, subscription: str, customer: str, mrr: int,
              status: str) -> None:  # fmt: skip
        old = self.subscriptions.get(subscription)
        if old is not None and old[0] > position:
            return  # a later-recorded entry already set this subscription's state
        counted = status in COUNTED_STATUSES
        if old is not None:
            self._add(old[1], -old[2])
            self.active -= old[3]
            if not status:  # no status given: it did not change
                counted = old[3]
        self.subscriptions[subscription] = (position, customer, mrr, counted)
        self._add(customer, mrr)
        self.active += counted

    def _add(self, customer: str, delta: int) -> None:
        before = self.customer_mrr.get(customer, 0)
        after = before + delta
        self.customer_mrr[customer] = after
        self.total += delta
        self.customers += (after > 0) - (before > 0)
        if after > 0:
            self.had_mrr.add(customer)


def mrr_sweep(rows: Sequence[MrrRow], *, buckets: Sequence[Bucket],
              currency: str) -> tuple[MrrBucket, ...]:  # fmt: skip
    """``billing.analytics.movements.mrr_movements(..., currency=currency)`` of the
    MRR rows of one currency, sorted by ``(booked_at, position)``."""
    found, _ = mrr_run(_MrrState(), rows, 0, buckets=buckets, currency=currency)
    return found


def mrr_run(
    state: _MrrState, rows: Sequence[MrrRow], index: int, *, buckets: Sequence[Bucket],
    currency: str,
) -> tuple[tuple[MrrBucket, ...], int]:  # fmt: skip
    """``mrr_sweep`` from ``state`` (which it moves on) and ``rows[index:]``; also the
    index of the first row not followed (booked at or after the last bucket's end), so
    a sweep stopped at a bucket's end goes on from there (``kakin.services.
    analytics_cache`` keeps the state at its horizon)."""
    count = len(rows)
    while index < count and rows[index][0] < buckets[0].start:
        _, position, subscription, customer, mrr, status, _ = rows[index]
        state.apply(position, subscription, customer, mrr, status)
        index += 1
    found = []
    for bucket in buckets:
        start_total, start_customers = state.total, state.customers
        first_seen: dict[str, tuple[int, bool]] = {}
        corrections: set[int] = set()
        while index < count and rows[index][0] < bucket.end:
            _, position, subscription, customer, mrr, status, correction = rows[index]
            for key in (customer, *_moved_from(state, subscription, customer)):
                if key not in first_seen:
                    first_seen[key] = (state.customer_mrr.get(key, 0), key in state.had_mrr)
            state.apply(position, subscription, customer, mrr, status)
            if correction:
                corrections.add(correction)
            index += 1
        found.append(
            MrrBucket(
                bucket=bucket,
                currency=currency,
                start=start_total,
                end=state.total,
                customers_start=start_customers,
                customers_end=state.customers,
                subscriptions_end=state.active,
                corrections=tuple(sorted(corrections)),
                **_classify(first_seen, state.customer_mrr),
            )
        )
    return tuple(found), index


def new_mrr_state() -> _MrrState:
    return _MrrState()


def _moved_from(state: _MrrState, subscription: str, customer: str) -> tuple[str, ...]:
    """The subscription's previous customer, when the entry moves it to another."""
    old = state.subscriptions.get(subscription)
    return (old[1],) if old is not None and old[1] != customer else ()


def _classify(first_seen: dict[str, tuple[int, bool]], now: dict[str, int]) -> Counter[str]:
    """As ``billing.analytics.movements._classify``: the net move of each customer
    touched in the bucket, by ``MrrBucket`` field name."""
    moves = Counter[str]()
    for key, (before, had_mrr) in first_seen.items():
        after = now.get(key, 0)
        if before == 0 and after > 0:
            moves["reactivation" if had_mrr else "new"] += after
            moves["reactivated_customers" if had_mrr else "new_customers"] += 1
        elif before > 0 and after == 0:
            moves["churn"] += before
            moves["churned_customers"] += 1
        elif after > before:
            moves["expansion"] += after - before
        elif after < before:
            moves["contraction"] += before - after
    return moves


# -- dunning episodes ---------------------------------------------------------------------

_FAILED, _SUCCEEDED = str(EntryKind.PAYMENT_FAILED), str(EntryKind.PAYMENT_SUCCEEDED)
_PAID = str(EntryKind.INVOICE_PAID)
_LOST = frozenset({str(EntryKind.INVOICE_VOIDED), str(EntryKind.INVOICE_WRITTEN_OFF)})


def dunning_sweep(rows: Iterable[DunningRow], *, buckets: Sequence[Bucket],
                  currency: str) -> list[DunningBucket]:  # fmt: skip
    """``billing.analytics.dunning.dunning(..., currency=currency)`` of one currency's
    payment, paid, voided and written-off rows, sorted by ``(booked_at, position)``."""
    starts = [b.start for b in buckets]
    end = buckets[-1].end
    tallies = [Tally() for _ in buckets]
    outside = Tally()  # outside the buckets: follow the episodes, count nothing
    # invoice id -> [started_at, decline code, amount, last step]
    episodes: dict[str, list[Any]] = {}
    for booked_at, _, kind, invoice, occurred_at, amount, attempt, code, step, _ in rows:
        inside = starts[0] <= booked_at < end
        tally = tallies[bisect_right(starts, booked_at) - 1] if inside else outside
        if attempt == 1 and kind in (_FAILED, _SUCCEEDED):
            tally.counts["first_attempts"] += 1
            tally.counts["first_attempt_failures"] += kind == _FAILED
        if kind == _FAILED and invoice:
            episode = episodes.setdefault(invoice, [occurred_at, code, amount, ""])
            episode[3] = step or episode[3]
            continue
        ongoing = episodes.get(invoice) if invoice else None
        if ongoing is None:
            continue
        if kind == _PAID:
            del episodes[invoice]
            tally.counts["recovered"] += 1
            tally.counts["recovered_amount"] += amount
            tally.by_step[step or ongoing[3]] += amount
            tally.by_code[ongoing[1]] += amount
            tally.durations.append(occurred_at - ongoing[0])
        elif kind in _LOST:
            del episodes[invoice]
            tally.counts["lost"] += 1
            tally.counts["lost_amount"] += ongoing[2]
    return [dunning_bucket(b, currency, t) for b, t in zip(buckets, tallies, strict=True)]


def ongoing_at(rows: Iterable[DunningRow], moment: datetime) -> frozenset[str]:
    """The invoices with a dunning episode ongoing at ``moment``: after the rows booked
    before it, as ``dunning_sweep`` starts and ends episodes."""
    ongoing: set[str] = set()
    for booked_at, _, kind, invoice, *_ in rows:
        if booked_at >= moment:
            break
        if not invoice:
            continue
        if kind == _FAILED:
            ongoing.add(invoice)
        elif kind == _PAID or kind in _LOST:
            ongoing.discard(invoice)
    return frozenset(ongoing)


# -- receivables aging --------------------------------------------------------------------

_FINALIZED = str(EntryKind.INVOICE_FINALIZED)
_SETTLING = frozenset({_PAID, str(EntryKind.CREDIT_NOTE_ISSUED)})


class _Open:
    """An invoice's state, as ``billing.analytics.receivables.open_invoices`` follows it."""

    __slots__ = ("closed", "customer_id", "due_at", "finalized", "settled")

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.finalized = self.settled = 0
        self.due_at: datetime | None = None
        self.closed = False

    @property
    def open_amount(self) -> int:
        """Above 0 only when it is open (and has a due moment)."""
        if self.closed or self.due_at is None:
            return 0
        return max(self.finalized - self.settled, 0)


def _follow_until(rows: Sequence[InvoiceRow], index: int, moment: datetime,
                  invoices: dict[str, _Open]) -> int:  # fmt: skip
    """Follows ``rows[index:]`` booked before ``moment``; the index of the next row."""
    count = len(rows)
    while index < count and rows[index][0] < moment:
        _, _, kind, invoice_id, customer_id, occurred_at, amount, due_at, _ = rows[index]
        index += 1
        if not invoice_id:
            continue
        invoice = invoices.get(invoice_id)
        if invoice is None:
            invoice = invoices[invoice_id] = _Open(customer_id)
        if kind == _FINALIZED:
            invoice.finalized += amount  # the amount due (models.repositories.analytics)
            invoice.due_at = due_at or occurred_at
        elif kind in _SETTLING:
            invoice.settled += amount
        elif kind in _LOST:
            invoice.closed = True
    return index


def open_at(rows: Sequence[InvoiceRow], *, as_of: datetime,
            currency: str) -> tuple[OpenInvoice, ...]:  # fmt: skip
    """``billing.analytics.receivables.open_invoices(..., as_of=as_of)`` of one currency's
    invoice rows sorted by ``(booked_at, position)``."""
    invoices: dict[str, _Open] = {}
    _follow_until(rows, 0, as_of, invoices)
    return open_list(invoices, as_of=as_of, currency=currency)


def open_list(invoices: dict[str, _Open], *, as_of: datetime,
              currency: str) -> tuple[OpenInvoice, ...]:  # fmt: skip
    """The open invoices of a followed state (``open_at``), as of ``as_of``."""
    found = []
    for invoice_id, invoice in invoices.items():
        amount = invoice.open_amount
        if amount and invoice.due_at is not None:
            found.append(OpenInvoice(invoice_id=invoice_id, customer_id=invoice.customer_id,
                                     currency=currency, open_amount=amount, due_at=invoice.due_at,
                                     band=band_of(as_of - invoice.due_at)))  # fmt: skip
    return tuple(sorted(found, key=lambda i: (i.due_at, i.invoice_id)))


def aging_sweep(rows: Sequence[InvoiceRow], *, moments: Sequence[datetime],
                currency: str) -> tuple[Aging, ...]:  # fmt: skip
    """``billing.analytics.receivables.aging(..., as_of=m, currency=currency)[0]`` at
    each of ``moments`` (ascending), in one pass over one currency's invoice rows
    sorted by ``(booked_at, position)``."""
    found, _ = aging_run({}, rows, 0, moments=moments, currency=currency)
    return found


def aging_run(
    invoices: dict[str, _Open], rows: Sequence[InvoiceRow], index: int, *,
    moments: Sequence[datetime], currency: str,
) -> tuple[tuple[Aging, ...], int]:  # fmt: skip
    """``aging_sweep`` from the followed ``invoices`` (moved on) and ``rows[index:]``;
    also the index of the first row not followed."""
    found = []
    for moment in moments:
        index = _follow_until(rows, index, moment, invoices)
        found.append(_aging(invoices.values(), moment, currency))
    return tuple(found), index


def follow(invoices: dict[str, _Open], rows: Sequence[InvoiceRow], index: int,
           moment: datetime) -> int:  # fmt: skip
    """Follows ``rows[index:]`` booked before ``moment`` into ``invoices``."""
    return _follow_until(rows, index, moment, invoices)


def open_state(invoices: dict[str, _Open]) -> dict[str, _Open]:
    """A copy of the invoices of a followed state that may still be open later: not
    voided or written off, and not settled in full (an invoice's entries after its
    payment can only settle it more, so a settled one stays at 0 whatever follows).
    Kept at a horizon by ``kakin.services.analytics_cache``; followed on a copy."""
    kept = {}
    for invoice_id, invoice in invoices.items():
        if invoice.closed or (invoice.finalized and invoice.finalized <= invoice.settled):
            continue
        twin = _Open(invoice.customer_id)
        twin.finalized, twin.settled = invoice.finalized, invoice.settled
        twin.due_at, twin.closed = invoice.due_at, invoice.closed
        kept[invoice_id] = twin
    return kept


def _aging(invoices: Iterable[_Open], moment: datetime, currency: str) -> Aging:
    sums = dict.fromkeys(BANDS, 0)
    count = 0
    for invoice in invoices:
        amount = invoice.open_amount
        if amount and invoice.due_at is not None:
            sums[band_of(moment - invoice.due_at)] += amount
            count += 1
    return Aging(
        currency=currency,
        as_of=moment,
        current=sums["current"],
        days_1_30=sums["1-30"],
        days_31_60=sums["31-60"],
        days_61_90=sums["61-90"],
        days_over_90=sums["90+"],
        invoices=count,
    )
