"""Money per bucket and currency: invoiced, collected, refunded, credited, failed.

Every figure sums the ``amount`` of one kind of ledger entry booked in the bucket:

- **invoiced**: ``invoice.finalized`` (the invoice total, tax included);
  **usage** is the metered part of it (``details["usage_amount"]``), the usage
  revenue reported beside MRR;
- **collected**: ``invoice.paid`` (only money received: a failed renewal is never
  revenue; ``payment.succeeded`` records the attempt and is not added again);
- **refunded**: ``refund.created``; **credited**: ``credit_note.issued`` of the credit
  notes that are not refunds (``details["method"]`` other than ``refund``): a refund
  writes both entries, and its money is in refunded once;
- **voided**: ``invoice.voided``; **written off**: ``invoice.written_off``;
- **failed payments**: how many ``payment.failed`` attempts, and their amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from billing.analytics.booking import book, by_bucket
from billing.analytics.buckets import Bucket
from billing.analytics.ledger import EntryKind, LedgerEntry

_SUMMED = {
    EntryKind.INVOICE_FINALIZED: "invoiced",
    EntryKind.INVOICE_PAID: "collected",
    EntryKind.REFUND_CREATED: "refunded",
    EntryKind.CREDIT_NOTE_ISSUED: "credited",
    EntryKind.INVOICE_VOIDED: "voided",
    EntryKind.INVOICE_WRITTEN_OFF: "written_off",
    EntryKind.PAYMENT_FAILED: "failed_amount",
}


@dataclass(frozen=True)
class RevenueBucket:
    bucket: Bucket
    currency: str
    invoiced: int = 0
    usage: int = 0
    collected: int = 0
    refunded: int = 0
    credited: int = 0
    voided: int = 0
    written_off: int = 0
    failed_payments: int = 0
    failed_amount: int = 0
    corrections: tuple[int, ...] = ()

    @property
    def net_collected(self) -> int:
        """Collected minus refunded."""
        return self.collected - self.refunded


def _refund_note(entry: LedgerEntry) -> bool:
    """The credit note of a refund: counted as refunded (its ``refund.created``)."""
    return entry.kind is EntryKind.CREDIT_NOTE_ISSUED and entry.details.get("method") == "refund"


def revenue(
    entries: Iterable[LedgerEntry],
    *,
    buckets: Sequence[Bucket],
    known_at: datetime | None = None,
    currency: str | None = None,
) -> tuple[RevenueBucket, ...]:
    """Revenue figures per currency and bucket (every bucket, zeros included)."""
    currencies, groups = by_bucket(
        book(entries, known_at=known_at), buckets=buckets, currency=currency
    )
    rows = []
    for code in currencies:
        for index, bucket in enumerate(buckets):
            sums = dict.fromkeys((*_SUMMED.values(), "usage", "failed_payments"), 0)
            corrections = set()
            for item in groups.get((code, index), []):
                entry = item.entry
                name = _SUMMED.get(entry.kind)
                if name is None or _refund_note(entry):
                    continue
                sums[name] += entry.amount
                if entry.kind is EntryKind.INVOICE_FINALIZED:
                    sums["usage"] += int(entry.details.get("usage_amount", "0"))
                if entry.kind is EntryKind.PAYMENT_FAILED:
                    sums["failed_payments"] += 1
                if item.correction:
                    corrections.add(item.correction)
            rows.append(
                RevenueBucket(
                    bucket=bucket, currency=code, corrections=tuple(sorted(corrections)), **sums
                )
            )
    return tuple(rows)
