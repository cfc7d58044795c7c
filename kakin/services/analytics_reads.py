"""The figures of one currency read fast: what SQL sums cleanly is summed there; the rest
is read as plain rows (``models.repositories.analytics``, through the driver) and
followed by one-pass sweeps (``kakin.services.analytics_sweeps``) that give what
``billing.analytics`` (the definition) gives, on only the entries a figure needs.

- **revenue**: per bucket and kind, sums in SQL (the bucket found from the same
  bucket starts ``billing.analytics.buckets`` gives, so both bucket alike); the
  corrected entries and their corrections by ``billing.analytics.revenue``, added.
- **MRR movements**: the MRR sweep over the MRR entries (about 7% of the ledger).
- **dunning**: the dunning sweep over the entries of invoices with a failed payment
  (the only ones with episodes); the other first attempts counted in SQL.
- **receivables**: the aging sweep over the entries of the invoices that may be open
  at a bucket's end (found in SQL), instead of ``billing.analytics.receivables.aging``
  once per bucket; the forecast's open invoices likewise, at one moment.

Each entry counts once: the SQL reads leave out the corrections and the entries they
correct (``models.repositories.analytics.Scope``), which are booked here
(``billing.analytics.booking``) and merged into the rows in booking order.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from billing.analytics.booking import Booked, book
from billing.analytics.buckets import Bucket
from billing.analytics.dunning import DunningBucket, observed_recovery_rate
from billing.analytics.ledger import MRR_KINDS, EntryKind, LedgerEntry
from billing.analytics.movements import MrrBucket
from billing.analytics.receivables import Aging, OpenInvoice, amount_due
from billing.analytics.revenue import RevenueBucket
from billing.analytics.revenue import revenue as revenue_figures
from kakin.services import analytics_sweeps as sweeps
from models.repositories import analytics as reads
from models.repositories.analytics import InvoiceRow, Scope

_Row = TypeVar("_Row", bound=tuple[Any, ...])

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


def revenue(
    session: Session,
    scope: Scope,
    buckets: Sequence[Bucket],
    kinds: Collection[EntryKind] = tuple(_SUMMED),
) -> tuple[RevenueBucket, ...]:
    """``billing.analytics.revenue.revenue`` of the scope, one row per bucket (with
    ``kinds``, only the figures those kinds of entries sum are right)."""
    base = list(revenue_figures(scope.special, buckets=buckets, currency=scope.currency))
    sums = reads.kind_sums(
        session, scope, starts=[b.start for b in buckets], end=buckets[-1].end, kinds=kinds
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


def usage_revenue(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> tuple[int, ...]:
    """The usage revenue of each bucket (``RevenueBucket.usage``), summing only the
    finalized invoices (a third of the entries ``revenue`` sums)."""
    rows = revenue(session, scope, buckets, kinds=(EntryKind.INVOICE_FINALIZED,))
    return tuple(row.usage for row in rows)


def movements(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> tuple[MrrBucket, ...]:
    """``billing.analytics.movements.mrr_movements`` of the scope."""
    rows = reads.mrr_rows(session, scope)
    special = [sweeps.mrr_row(b) for b in book(scope.special) if b.entry.kind in MRR_KINDS]
    return sweeps.mrr_sweep(_merged(rows, special), buckets=buckets, currency=scope.currency)


def dunning(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> tuple[DunningBucket, ...]:
    """``billing.analytics.dunning.dunning`` of the scope, one row per bucket."""
    found = _episodes(session, scope, buckets)
    counted = reads.first_attempts(
        session, scope, starts=[b.start for b in buckets], end=buckets[-1].end
    )
    for index, attempts, failures in counted:
        row = found[index]
        found[index] = dataclasses.replace(
            row,
            first_attempts=row.first_attempts + attempts,
            first_attempt_failures=row.first_attempt_failures + failures,
        )
    return tuple(found)


def _episodes(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> list[DunningBucket]:
    """The dunning sweep over the invoices with a failed payment."""
    invoices = reads.failed_invoices(session, scope)
    rows = reads.dunning_rows(session, scope, _DUNNING_KINDS, invoices)
    special = [sweeps.dunning_row(b) for b in book(scope.special)
               if b.entry.kind in _DUNNING_KINDS]  # fmt: skip
    return sweeps.dunning_sweep(_merged(rows, special), buckets=buckets, currency=scope.currency)


def receivables(session: Session, scope: Scope, moments: Sequence[datetime]) -> tuple[Aging, ...]:
    """``billing.analytics.receivables.aging`` of the scope at each of ``moments``
    (ascending), one row each."""
    rows = reads.invoice_rows(session, scope, moments=moments)
    special = [_invoice_row(b) for b in book(scope.special)]
    return sweeps.aging_sweep(_merged(rows, special), moments=moments, currency=scope.currency)


def open_invoices(session: Session, scope: Scope, as_of: datetime) -> tuple[OpenInvoice, ...]:
    """``billing.analytics.receivables.open_invoices`` of the scope as of ``as_of``."""
    rows = reads.invoice_rows(session, scope, moments=[as_of])
    special = [_invoice_row(b) for b in book(scope.special)]
    return sweeps.open_at(_merged(rows, special), as_of=as_of, currency=scope.currency)


def recovery_rate(session: Session, scope: Scope, buckets: Sequence[Bucket]) -> Decimal | None:
    """``billing.analytics.dunning.observed_recovery_rate`` of the scope's ``dunning``
    (without the first attempts, which it does not read)."""
    found = _episodes(session, scope, buckets)
    return observed_recovery_rate(found)


def aging_at(
    entries: Iterable[LedgerEntry], *, moments: Sequence[datetime], currency: str
) -> tuple[Aging, ...]:
    """``aging(entries, as_of=m, currency=currency)[0]`` for each of ``moments``
    (ascending), in one pass over the booked entries rather than one per moment."""
    rows = [_invoice_row(b) for b in book(entries) if b.entry.currency == currency]
    return sweeps.aging_sweep(rows, moments=moments, currency=currency)


def _invoice_row(item: Booked) -> InvoiceRow:
    """An ``InvoiceRow``; a finalized entry's amount is its amount due."""
    entry = item.entry
    due = amount_due(entry) if entry.kind is EntryKind.INVOICE_FINALIZED else entry.amount
    return (item.booked_at, item.position, str(entry.kind), entry.invoice_id, entry.customer_id,
            entry.occurred_at, due, entry.due_at, item.correction)  # fmt: skip


def _merged(rows: list[_Row], special: list[_Row]) -> list[_Row]:
    """The SQL rows (in booking order) with the special entries' rows, in booking order."""
    if not special:
        return rows
    return sorted([*rows, *special], key=_booking_order)


def _booking_order(row: tuple[Any, ...]) -> tuple[datetime, int]:
    return row[0], row[1]
