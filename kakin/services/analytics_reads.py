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

With a ``cache`` (``kakin.services.analytics_cache.Closed``), each figure keeps the rows
of its buckets before a recent horizon, and what its sweep had followed there, and reads
only the entries booked since it; without one (the fast tests), it reads everything.

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
from kakin.services.analytics_cache import SETTLE, Closed
from models.repositories import analytics as reads
from models.repositories.analytics import DunningRow, InvoiceRow, Scope

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


def _split(
    cache: Closed | None, buckets: Sequence[Bucket]
) -> tuple[datetime | None, Sequence[Bucket], Sequence[Bucket]]:
    """``(horizon, closed buckets, the others)``: the buckets ending by the cache's
    horizon are closed (no horizon, or no cache: none is)."""
    horizon = cache.horizon([b.end for b in buckets]) if cache is not None else None
    if horizon is None:
        return None, (), buckets
    closed = [b for b in buckets if b.end <= horizon]
    return horizon, closed, buckets[len(closed) :]


def _key(name: str, scope: Scope, buckets: Sequence[Bucket], *more: object) -> tuple[object, ...]:
    """What a kept value is for (the cache adds the database, currency and horizon):
    the buckets' bounds say the zone and the interval too."""
    return (name, scope.until, tuple(b.start for b in buckets), *more)


def revenue(
    session: Session,
    scope: Scope,
    buckets: Sequence[Bucket],
    kinds: Collection[EntryKind] = tuple(_SUMMED),
    cache: Closed | None = None,
) -> tuple[RevenueBucket, ...]:
    """``billing.analytics.revenue.revenue`` of the scope, one row per bucket (with
    ``kinds``, only the figures those kinds of entries sum are right)."""
    horizon, closed, rest = _split(cache, buckets)
    if cache is None or horizon is None:
        return _revenue(session, scope, buckets, kinds)
    key = _key("revenue", scope, closed, tuple(sorted(kinds)))
    kept = cache.get(key, scope.currency, horizon)
    if kept is None:
        kept = _revenue(session, scope, closed, kinds)
        cache.put(key, scope.currency, horizon, kept)
    return (*kept, *(_revenue(session, scope, rest, kinds, recent=True) if rest else ()))


def _revenue(
    session: Session,
    scope: Scope,
    buckets: Sequence[Bucket],
    kinds: Collection[EntryKind],
    recent: bool = False,
) -> tuple[RevenueBucket, ...]:
    base = list(revenue_figures(scope.special, buckets=buckets, currency=scope.currency))
    sums = reads.kind_sums(session, scope, starts=[b.start for b in buckets],
                           end=buckets[-1].end, kinds=kinds, recent=recent)  # fmt: skip
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


def usage_revenue(
    session: Session, scope: Scope, buckets: Sequence[Bucket], cache: Closed | None = None
) -> tuple[int, ...]:
    """The usage revenue of each bucket (``RevenueBucket.usage``), summing only the
    finalized invoices (a third of the entries ``revenue`` sums)."""
    rows = revenue(session, scope, buckets, kinds=(EntryKind.INVOICE_FINALIZED,), cache=cache)
    return tuple(row.usage for row in rows)


def movements(
    session: Session, scope: Scope, buckets: Sequence[Bucket], cache: Closed | None = None
) -> tuple[MrrBucket, ...]:
    """``billing.analytics.movements.mrr_movements`` of the scope."""
    special = [sweeps.mrr_row(b) for b in book(scope.special) if b.entry.kind in MRR_KINDS]
    horizon, closed, rest = _split(cache, buckets)
    code = scope.currency
    if cache is None or horizon is None:
        rows = _merged(reads.mrr_rows(session, scope), special)
        return sweeps.mrr_sweep(rows, buckets=buckets, currency=code)
    key = _key("movements", scope, closed)
    kept = cache.get(key, code, horizon)
    if kept is None:
        rows = _merged(reads.mrr_rows(session, scope), special)
        state = sweeps.new_mrr_state()
        shut, index = sweeps.mrr_run(state, rows, 0, buckets=closed, currency=code)
        cache.put(key, code, horizon, (shut, state.copy()))
    else:
        shut, at_horizon = kept
        state, index = at_horizon.copy(), 0
        recent = [row for row in special if row[0] >= horizon]
        rows = _merged(reads.mrr_rows(session, scope, since=horizon), recent)
    if not rest:
        return shut
    opened, _ = sweeps.mrr_run(state, rows, index, buckets=rest, currency=code)
    return (*shut, *opened)


def dunning(
    session: Session, scope: Scope, buckets: Sequence[Bucket], cache: Closed | None = None
) -> tuple[DunningBucket, ...]:
    """``billing.analytics.dunning.dunning`` of the scope, one row per bucket."""
    horizon, closed, rest = _split(cache, buckets)
    if cache is None or horizon is None:
        return _dunning(session, scope, buckets, _failed_rows(session, scope))
    key = _key("dunning", scope, closed)
    kept = cache.get(key, scope.currency, horizon)
    if kept is None:
        rows = _failed_rows(session, scope)
        kept = (_dunning(session, scope, closed, rows), sweeps.ongoing_at(rows, horizon))
        cache.put(key, scope.currency, horizon, kept)
    shut, ongoing = kept
    if not rest:
        return shut
    # An episode counts where it ends: one ending from the horizon on was ongoing there
    # or starts with a failure booked since (the dunning sweep follows each invoice
    # alone); the failed invoices' first attempts since the horizon are theirs too.
    recent = reads.failed_since(session, scope, horizon)
    invoices = sorted({*ongoing, *recent, *scope.special_invoices})
    return (*shut, *_dunning(session, scope, rest, _failed_rows(session, scope, invoices),
                             recent=True))  # fmt: skip


def _failed_rows(
    session: Session, scope: Scope, invoices: Sequence[str] | None = None
) -> list[DunningRow]:
    """The dunning rows of ``invoices`` (``None``: every invoice with a failed payment,
    and those the special entries touch), the special ones merged in."""
    if invoices is None:
        invoices = reads.failed_invoices(session, scope)
    rows = reads.dunning_rows(session, scope, _DUNNING_KINDS, invoices)
    special = [sweeps.dunning_row(b) for b in book(scope.special)
               if b.entry.kind in _DUNNING_KINDS]  # fmt: skip
    return _merged(rows, special)


def _dunning(
    session: Session,
    scope: Scope,
    buckets: Sequence[Bucket],
    rows: list[DunningRow],
    recent: bool = False,
) -> tuple[DunningBucket, ...]:
    found = sweeps.dunning_sweep(rows, buckets=buckets, currency=scope.currency)
    counted = reads.first_attempts(session, scope, starts=[b.start for b in buckets],
                                   end=buckets[-1].end, recent=recent)  # fmt: skip
    for index, attempts, failures in counted:
        row = found[index]
        found[index] = dataclasses.replace(
            row,
            first_attempts=row.first_attempts + attempts,
            first_attempt_failures=row.first_attempt_failures + failures,
        )
    return tuple(found)


def receivables(
    session: Session, scope: Scope, moments: Sequence[datetime], cache: Closed | None = None
) -> tuple[Aging, ...]:
    """``billing.analytics.receivables.aging`` of the scope at each of ``moments``
    (ascending), one row each."""
    special = [_invoice_row(b) for b in book(scope.special)]
    code = scope.currency
    horizon = cache.horizon(moments) if cache is not None else None
    if cache is None or horizon is None:
        rows = _merged(reads.invoice_rows(session, scope, moments=moments), special)
        return sweeps.aging_sweep(rows, moments=moments, currency=code)
    closed = [m for m in moments if m <= horizon]  # the last is the horizon
    rest = moments[len(closed) :]
    key = ("aging", scope.until, tuple(closed))
    shut = cache.get(key, code, horizon)
    if shut is None:
        rows = _merged(reads.invoice_rows(session, scope, moments=closed), special)
        shut = sweeps.aging_sweep(rows, moments=closed, currency=code)
        cache.put(key, code, horizon, shut)
    if not rest:
        return shut
    # The moments after the horizon are all within SETTLE of the request's: followed
    # from the open invoices kept at the start of that day.
    invoices, rows, index = _open_state(session, scope, rest, cache, special)
    opened, _ = sweeps.aging_run(invoices, rows, index, moments=rest, currency=code)
    return (*shut, *opened)


def _since(session: Session, scope: Scope, horizon: datetime,
           special: list[InvoiceRow]) -> list[InvoiceRow]:  # fmt: skip
    """The invoice rows booked from ``horizon`` on, the special ones merged in."""
    recent = [row for row in special if row[0] >= horizon]
    return _merged(reads.invoice_rows_since(session, scope, horizon), recent)


def _open_state(
    session: Session,
    scope: Scope,
    moments: Sequence[datetime],
    cache: Closed,
    special: list[InvoiceRow],
) -> tuple[dict[str, Any], list[InvoiceRow], int]:
    """``(invoices, rows, index)``: the invoices that may be open at ``moments``
    (ascending), followed up to the UTC midnight before ``moments[0] - SETTLE`` (kept by
    the cache: stable for a day), and the rows from there on, to follow from ``index``."""
    settled = moments[0] - SETTLE
    horizon = settled.replace(hour=0, minute=0, second=0, microsecond=0)
    key = ("open", scope.until)
    kept = cache.get(key, scope.currency, horizon)
    if kept is not None:
        return sweeps.open_state(kept), _since(session, scope, horizon, special), 0
    rows = _merged(reads.invoice_rows(session, scope, moments=[horizon, *moments]), special)
    invoices: dict[str, Any] = {}
    index = sweeps.follow(invoices, rows, 0, horizon)
    cache.put(key, scope.currency, horizon, sweeps.open_state(invoices))
    return invoices, rows, index


def open_invoices(
    session: Session, scope: Scope, as_of: datetime, cache: Closed | None = None
) -> tuple[OpenInvoice, ...]:
    """``billing.analytics.receivables.open_invoices`` of the scope as of ``as_of``."""
    special = [_invoice_row(b) for b in book(scope.special)]
    code = scope.currency
    if cache is None:
        rows = _merged(reads.invoice_rows(session, scope, moments=[as_of]), special)
        return sweeps.open_at(rows, as_of=as_of, currency=code)
    invoices, rows, index = _open_state(session, scope, [as_of], cache, special)
    sweeps.follow(invoices, rows, index, as_of)
    return sweeps.open_list(invoices, as_of=as_of, currency=code)


def recovery_rate(session: Session, scope: Scope, buckets: Sequence[Bucket],
                  cache: Closed | None = None) -> Decimal | None:  # fmt: skip
    """``billing.analytics.dunning.observed_recovery_rate`` of the scope's ``dunning``."""
    return observed_recovery_rate(list(dunning(session, scope, buckets, cache=cache)))


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
