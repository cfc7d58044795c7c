"""Reading what the pipeline wrote to the billing ledger, for the ledger tests."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import MRR_KINDS, LedgerEntry
from models.repositories import ledger as ledger_sql
from models.tables import LedgerRow


def entries_of(sessions: sessionmaker[Session], subscription_id: str) -> list[LedgerEntry]:
    """The subscription's entries (its invoices' too), in recording order."""
    with sessions() as session:
        rows = session.scalars(
            select(LedgerRow)
            .where(LedgerRow.subscription_id == subscription_id)
            .order_by(LedgerRow.id)
        )
        return [ledger_sql.entry_of(row) for row in rows]


def keys_of(sessions: sessionmaker[Session], *ids: str) -> list[str]:
    """The event keys of the entries of these subscriptions or invoices."""
    with sessions() as session:
        return list(
            session.scalars(
                select(LedgerRow.event_key)
                .where(or_(LedgerRow.subscription_id.in_(ids), LedgerRow.invoice_id.in_(ids)))
                .order_by(LedgerRow.id)
            )
        )


def mrr_path(entries: list[LedgerEntry]) -> list[tuple[str, int, int, str, str]]:
    """(kind, MRR before, after, status before, after) of the entries that carry MRR."""
    return [
        (str(e.kind), e.mrr_before, e.mrr_after, e.status_before, e.status_after)
        for e in entries
        if e.kind in MRR_KINDS
    ]
