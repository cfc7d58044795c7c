"""Credit notes and the customer's credit balance they leave."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.tables import CreditNote, CreditTransaction


def credit_balance(session: Session, customer_id: str, currency: str) -> int:
    """What the customer's credit notes left to spend on their next invoices."""
    total = session.scalar(
        select(func.coalesce(func.sum(CreditTransaction.amount), 0)).where(
            CreditTransaction.customer_id == customer_id, CreditTransaction.currency == currency
        )
    )
    return int(total or 0)


def credit_notes_of(session: Session, invoice_id: str) -> list[CreditNote]:
    return list(
        session.scalars(
            select(CreditNote)
            .where(CreditNote.invoice_id == invoice_id)
            .order_by(CreditNote.created_at, CreditNote.number)
        )
    )
