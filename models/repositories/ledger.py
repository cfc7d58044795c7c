"""The billing ledger: appending a change (once per event key) and reading entries back.

Rows are added in the caller's transaction, with the change they record. Reading gives
``billing.analytics`` entries, the type every figure is computed from.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from billing.analytics.ledger import MRR_KINDS, EntryKind, LedgerEntry
from models.tables import LedgerRow

# The LedgerEntry fields a row stores as they are (everything but the key and id).
_FIELDS = (
    "kind", "occurred_at", "recorded_at", "customer_id", "subscription_id", "invoice_id",
    "currency", "amount", "mrr_before", "mrr_after", "status_before", "status_after",
    "actor", "attempt", "decline_code", "dunning_step", "due_at", "details", "corrects",
)  # fmt: skip


def by_key(session: Session, event_key: str) -> LedgerRow | None:
    return session.scalars(select(LedgerRow).where(LedgerRow.event_key == event_key)).first()


def append(session: Session, event_key: str, **fields: Any) -> LedgerRow:
    """The row of ``event_key``: added now (unflushed) unless a first try wrote it.

    ``fields`` are LedgerEntry's (without ``id``); they are checked by building the
    entry first, so a row that the figures could not read is never written. The
    unique key is the backstop when two tries race: the second commit fails.
    """
    # Not flushing the change being recorded: a try racing another finds out at its
    # commit (the change's own unique key), where the caller handles it.
    with session.no_autoflush:
        existing = by_key(session, event_key)
    if existing is not None:
        return existing
    checked = LedgerEntry(id=1, **fields)  # validates and normalises (UTC, currency)
    row = LedgerRow(
        event_key=event_key,
        **{name: getattr(checked, name) for name in _FIELDS if name != "details"},
        details=dict(checked.details),
    )
    row.kind = str(checked.kind)
    session.add(row)
    return row


def discard(session: Session, event_key: str) -> None:
    """Delete the row of a change that was undone before anything saw it (a subscription
    whose workflow never started is deleted with its row): the one exception to
    append-only, for a change that never took effect."""
    session.execute(delete(LedgerRow).where(LedgerRow.event_key == event_key))


def latest_mrr_entry(session: Session, subscription_id: str) -> LedgerRow | None:
    """The subscription's last entry that carries MRR (its MRR and status now)."""
    kinds = [str(kind) for kind in MRR_KINDS]
    return session.scalars(
        select(LedgerRow)
        .where(LedgerRow.subscription_id == subscription_id, LedgerRow.kind.in_(kinds))
        .order_by(LedgerRow.id.desc())
        .limit(1)
    ).first()


def entries(
    session: Session,
    *,
    currency: str | None = None,
    until: datetime | None = None,
    kinds: Collection[EntryKind] | None = None,
) -> list[LedgerEntry]:
    """Entries in recording order, optionally of one currency, kinds, or booked before
    ``until`` (``max(occurred_at, recorded_at) < until``, as billing.analytics books)."""
    query = select(LedgerRow).order_by(LedgerRow.id)
    if currency is not None:
        query = query.where(LedgerRow.currency == currency.upper())
    if until is not None:
        query = query.where(LedgerRow.occurred_at < until, LedgerRow.recorded_at < until)
    if kinds is not None:
        query = query.where(LedgerRow.kind.in_([str(kind) for kind in kinds]))
    return [entry_of(row) for row in session.scalars(query)]


def customer_rows(session: Session, customer_id: str, *, limit: int) -> list[LedgerRow]:
    """The customer's latest ``limit`` rows, newest first (by billing time, then as
    recorded): what their timeline shows."""
    return list(
        session.scalars(
            select(LedgerRow)
            .where(LedgerRow.customer_id == customer_id)
            .order_by(LedgerRow.occurred_at.desc(), LedgerRow.id.desc())
            .limit(limit)
        )
    )


def entry_of(row: LedgerRow) -> LedgerEntry:
    return LedgerEntry(id=row.id, **{name: getattr(row, name) for name in _FIELDS})


def currencies(session: Session) -> list[str]:
    """Every currency the ledger holds, sorted."""
    return sorted(session.scalars(select(LedgerRow.currency).distinct()))
