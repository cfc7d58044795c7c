"""Accounts receivable: the open balance as of a moment, by days past due.

An invoice's **open amount** as of ``t`` (entries booked before ``t``) is its
amount due when finalized (``invoice.finalized``'s ``details["amount_due"]``: the total
less the customer's balance it used and any amount carried forward to the next
invoice, which collects it) minus its ``invoice.paid`` amounts and the
``credit_note.issued`` amounts against it, never below 0 (a credit note on a paid
invoice is a refund or customer credit, not a negative receivable), and 0 once it is
``invoice.voided`` or ``invoice.written_off``.

**Days past due** age an open invoice by ``late = t - due_at`` (``due_at`` absent:
due when finalized), in half-open bands so each invoice lands in exactly one:
current ``late <= 0``; 1-30 ``0 < late <= 30 days``; 31-60 ``30 < late <= 60``;
61-90 ``60 < late <= 90``; 90+ ``late > 90 days``. One second late is day 1, as on a
statement that counts the days since the due date. The bands sum to the open balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.analytics.booking import book
from billing.analytics.ledger import EntryKind, LedgerEntry
from billing.money import normalize_currency

BANDS = ("current", "1-30", "31-60", "61-90", "90+")
_LIMITS = (timedelta(0), timedelta(days=30), timedelta(days=60), timedelta(days=90))


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: str
    customer_id: str
    currency: str
    open_amount: int
    due_at: datetime
    band: str


@dataclass(frozen=True)
class Aging:
    """The open balance of one currency as of a moment, by band (minor units)."""

    currency: str
    as_of: datetime
    current: int = 0
    days_1_30: int = 0
    days_31_60: int = 0
    days_61_90: int = 0
    days_over_90: int = 0
    invoices: int = 0

    @property
    def open_balance(self) -> int:
        return self.current + self.days_1_30 + self.days_31_60 + self.days_61_90 + self.days_over_90


def band_of(late: timedelta) -> str:
    """The days-past-due band of an invoice ``late`` past its due moment."""
    for band, limit in zip(BANDS, _LIMITS, strict=False):
        if late <= limit:
            return band
    return BANDS[-1]


def amount_due(finalized: LedgerEntry) -> int:
    """What a finalized invoice leaves to be paid: its total less the customer's balance
    it used and any amount carried forward (``details["amount_due"]``). ``invoice.paid``
    records the cash that settled it, so the total would leave the part the balance
    covered open for ever; an entry without the detail is due in full."""
    return int(finalized.details.get("amount_due", finalized.amount))


@dataclass
class _Invoice:
    customer_id: str
    currency: str
    finalized: int = 0
    settled: int = 0
    due_at: datetime | None = None
    closed: bool = False


def open_invoices(
    entries: Iterable[LedgerEntry], *, as_of: datetime, known_at: datetime | None = None
) -> tuple[OpenInvoice, ...]:
    """Every invoice with an open amount above 0 as of ``as_of``, by due date."""
    invoices: dict[str, _Invoice] = {}
    for item in book(entries, known_at=known_at):
        entry = item.entry
        if item.booked_at >= as_of:
            break  # booked in order: nothing later counts
        if not entry.invoice_id:
            continue
        invoice = invoices.setdefault(
            entry.invoice_id, _Invoice(customer_id=entry.customer_id, currency=entry.currency)
        )
        if entry.kind is EntryKind.INVOICE_FINALIZED:
            invoice.finalized += amount_due(entry)
            invoice.due_at = entry.due_at or entry.occurred_at
        elif entry.kind in (EntryKind.INVOICE_PAID, EntryKind.CREDIT_NOTE_ISSUED):
            invoice.settled += entry.amount
        elif entry.kind in (EntryKind.INVOICE_VOIDED, EntryKind.INVOICE_WRITTEN_OFF):
            invoice.closed = True
    found = []
    for invoice_id, invoice in invoices.items():
        amount = max(invoice.finalized - invoice.settled, 0)
        if invoice.closed or amount == 0 or invoice.due_at is None:
            continue
        found.append(
            OpenInvoice(
                invoice_id=invoice_id,
                customer_id=invoice.customer_id,
                currency=invoice.currency,
                open_amount=amount,
                due_at=invoice.due_at,
                band=band_of(as_of - invoice.due_at),
            )
        )
    return tuple(sorted(found, key=lambda i: (i.due_at, i.invoice_id)))


def aging(
    entries: Iterable[LedgerEntry],
    *,
    as_of: datetime,
    known_at: datetime | None = None,
    currency: str | None = None,
) -> tuple[Aging, ...]:
    """The receivables aging per currency as of ``as_of`` (one row per currency)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    wanted = None if currency is None else normalize_currency(currency)
    sums: dict[str, dict[str, int]] = {}
    if wanted is not None:
        sums[wanted] = dict.fromkeys(BANDS, 0)
    counts: dict[str, int] = {}
    for invoice in open_invoices(entries, as_of=as_of, known_at=known_at):
        if wanted is not None and invoice.currency != wanted:
            continue
        sums.setdefault(invoice.currency, dict.fromkeys(BANDS, 0))[invoice.band] += (
            invoice.open_amount
        )
        counts[invoice.currency] = counts.get(invoice.currency, 0) + 1
    return tuple(
        Aging(
            currency=code,
            as_of=as_of,
            current=bands["current"],
            days_1_30=bands["1-30"],
            days_31_60=bands["31-60"],
            days_61_90=bands["61-90"],
            days_over_90=bands["90+"],
            invoices=counts.get(code, 0),
        )
        for code, bands in sorted(sums.items())
    )
