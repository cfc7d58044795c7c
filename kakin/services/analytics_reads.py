"""The figures of one currency read fast: what SQL sums cleanly is summed there, the rest
is computed by ``billing.analytics`` (the definition) on the few entries it needs.

- **revenue**: per bucket and kind, sums in SQL (the bucket found from the same
  bucket starts ``billing.analytics.buckets`` gives, so both bucket alike); the
  corrected entries and their corrections by ``billing.analytics.revenue``, added.
- **MRR movements**: ``billing.analytics.movements`` on the MRR entries only.
- **dunning**: ``billing.analytics.dunning`` on the entries of invoices with a failed
  payment (the only ones with episodes); the other first attempts counted in SQL.
- **receivables**: one sweep over the entries of the invoices that may be open at a
  bucket's end, instead of ``billing.analytics.receivables.aging`` once per bucket
  (each a pass over the whole ledger); it gives the same rows (tests hold it to it).

Each entry counts once: the SQL sums leave out the corrections and the entries they
correct (``models.repositories.analytics.Scope``), which the Python side books.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from billing.analytics.booking import book
from billing.analytics.buckets import Bucket
from billing.analytics.dunning import DunningBucket
from billing.analytics.dunning import dunning as dunning_figures
from billing.analytics.ledger import MRR_KINDS, EntryKind, LedgerEntry
from billing.analytics.movements import MrrBucket, mrr_movements
from billing.analytics.receivables import BANDS, Aging, band_of
from billing.analytics.revenue import RevenueBucket
from billing.analytics.revenue import revenue as revenue_figures
from models.repositories import analytics as reads
from models.repositories.analytics import Scope

_SUMMED = {
    EntryKind.INVOICE_FINALIZED: "invoiced",
    EntryKind.INVOICE_PAID: "collected",
    EntryKind.REFUND_CREATED: "refunded",
    EntryKind.CREDIT_NOTE_ISSUED: "credited",
    EntryKind.INVOICE_VOIDED: "voided",
    EntryKind.INVOICE_WRITTEN_OFF: "written_off",
    EntryKind.PAYMENT_FAILED: "failed_amount",
}
_DUNNING_KINDS = frozenset(
    {
        EntryKind.PAYMENT_FAILED,
        EntryKind.PAYMENT_SUCCEEDED,
        EntryKind.INVOICE_PAID,
        EntryKind.INVOICE_VOIDED,
        EntryKind.INVOICE_WRITTEN_OFF,
    }
)


def revenue(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> tuple[RevenueBucket, ...]:
    """``billing.analytics.revenue.revenue`` of the scope, one row per bucket."""
    base = list(revenue_figures(scope.special, buckets=buckets, currency=scope.currency))
    sums = reads.kind_sums(
        session, scope, starts=[b.start for b in buckets], end=buckets[-1].end, kinds=_SUMMED
    )
    added: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for index, kind, amount, count, usage in sums:
        entry_kind = EntryKind(kind)
        added[index][_SUMMED[entry_kind]] += amount
        if entry_kind is EntryKind.INVOICE_FINALIZED:
            added[index]["usage"] += usage
        if entry_kind is EntryKind.PAYMENT_FAILED:
            added[index]["failed_payments"] += count
    for index, more in added.items():
        row = base[index]
        base[index] = dataclasses.replace(
            row, **{name: getattr(row, name) + value for name, value in more.items()}
        )
    return tuple(base)


def movements(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> tuple[MrrBucket, ...]:
    """``billing.analytics.movements.mrr_movements`` of the scope."""
    found = reads.entries(session, scope, kinds=MRR_KINDS)
    return mrr_movements(found, buckets=buckets, currency=scope.currency)


def dunning(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> tuple[DunningBucket, ...]:
    """``billing.analytics.dunning.dunning`` of the scope, one row per bucket."""
    found = reads.entries(session, scope, kinds=_DUNNING_KINDS, failed_invoices_only=True)
    rows = list(dunning_figures(found, buckets=buckets, currency=scope.currency))
    counted = reads.first_attempts(
        session, scope, starts=[b.start for b in buckets], end=buckets[-1].end
    )
    for index, attempts, failures in counted:
        row = rows[index]
        rows[index] = dataclasses.replace(
            row,
            first_attempts=row.first_attempts + attempts,
            first_attempt_failures=row.first_attempt_failures + failures,
        )
    return tuple(rows)


def receivables(session: Session, scope: Scope, moments: Sequence[datetime]) -> tuple[Aging, ...]:
    """``billing.analytics.receivables.aging`` of the scope at each of ``moments``
    (ascending), one row each."""
    found = reads.open_candidates(session, scope, moments=moments)
    return aging_at(found, moments=moments, currency=scope.currency)


@dataclass
class _Invoice:
    currency: str
    finalized: int = 0
    settled: int = 0
    due_at: datetime | None = None
    closed: bool = False


def aging_at(
    entries: Iterable[LedgerEntry], *, moments: Sequence[datetime], currency: str
) -> tuple[Aging, ...]:
    """``aging(entries, as_of=m, currency=currency)[0]`` for each of ``moments``
    (ascending), in one pass over the booked entries rather than one per moment."""
    booked = book(entries)
    invoices: dict[str, _Invoice] = {}
    rows = []
    position = 0
    for moment in moments:
        while position < len(booked) and booked[position].booked_at < moment:
            _apply(invoices, booked[position].entry)
            position += 1
        rows.append(_aging(invoices, moment, currency))
    return tuple(rows)


def _apply(invoices: dict[str, _Invoice], entry: LedgerEntry) -> None:
    """As ``billing.analytics.receivables.open_invoices`` follows an entry."""
    if not entry.invoice_id:
        return
    invoice = invoices.setdefault(entry.invoice_id, _Invoice(currency=entry.currency))
    if entry.kind is EntryKind.INVOICE_FINALIZED:
        invoice.finalized += entry.amount
        invoice.due_at = entry.due_at or entry.occurred_at
    elif entry.kind in (EntryKind.INVOICE_PAID, EntryKind.CREDIT_NOTE_ISSUED):
        invoice.settled += entry.amount
    elif entry.kind in (EntryKind.INVOICE_VOIDED, EntryKind.INVOICE_WRITTEN_OFF):
        invoice.closed = True


def _aging(invoices: dict[str, _Invoice], moment: datetime, currency: str) -> Aging:
    sums = dict.fromkeys(BANDS, 0)
    count = 0
    for invoice in invoices.values():
        amount = max(invoice.finalized - invoice.settled, 0)
        if invoice.closed or amount == 0 or invoice.due_at is None:
            continue
        if invoice.currency != currency:
            continue
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
