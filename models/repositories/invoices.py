"""Invoices: by id (locked or not) or business key, the gapless number series, lists."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, overload

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from models.payloads import ChargeOutcome, InvoiceStatus
from models.repositories.common import NotFoundError, get, page
from models.tables import Invoice, InvoiceNumberSequence, PaymentAttempt


def invoice(session: Session, invoice_id: str) -> Invoice:
    return get(session, Invoice, invoice_id)


def invoice_for_update(session: Session, invoice_id: str) -> Invoice:
    """The invoice, row-locked until commit: concurrent tries of one step queue up."""
    row = session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFoundError(f"invoice {invoice_id!r} does not exist")
    return row


@overload
def invoice_by_key(session: Session, key: str, *, required: Literal[True]) -> Invoice: ...
@overload
def invoice_by_key(session: Session, key: str, *, required: bool = False) -> Invoice | None: ...
def invoice_by_key(session: Session, key: str, *, required: bool = False) -> Invoice | None:
    row = session.scalars(select(Invoice).where(Invoice.business_key == key)).one_or_none()
    if row is None and required:
        raise NotFoundError(f"no invoice with business key {key!r}")
    return row


def take_invoice_number(session: Session, finalized_at: datetime) -> str:
    return take_number(session, "invoice", "INV")


def take_number(session: Session, series: str, prefix: str) -> str:
    """Take the next number of a series (``INV-000042``), locked until the caller commits.

    ``FOR UPDATE`` serializes the takers on PostgreSQL (SQLite serializes writers
    anyway); because the increment commits with the document, an aborted transaction
    gives its number back and the series stays gapless.
    """
    sequence = session.scalars(
        select(InvoiceNumberSequence)
        .where(InvoiceNumberSequence.series == series)
        .with_for_update()
    ).one()
    value = sequence.next_value
    sequence.next_value = value + 1
    return f"{prefix}-{value:06d}"


def invoices(
    session: Session,
    *,
    limit: int,
    starting_after: str | None = None,
    overdue_at: datetime | None = None,
    period_from: datetime | None = None,
    period_until: datetime | None = None,
    **equal: str | None,
) -> tuple[list[Invoice], bool]:
    """A page of invoices, newest first, where each column named (``status``,
    ``customer_id``, ``subscription_id``) equals its value; with ``overdue_at``, only
    those open and due before it (an invoice is due when finalized, as the ledger's
    ``due_at`` says); with ``period_from``/``period_until``, only those whose period
    starts at or after / before them."""
    conditions: list[ColumnElement[bool]] = []
    if overdue_at is not None:
        conditions += [Invoice.status == InvoiceStatus.OPEN, Invoice.finalized_at < overdue_at]
    if period_from is not None:
        conditions.append(Invoice.period_start >= period_from)
    if period_until is not None:
        conditions.append(Invoice.period_start < period_until)
    where = and_(*conditions) if conditions else None
    return page(
        session, Invoice, limit=limit, starting_after=starting_after, where=where, equal=equal
    )


def failing_invoices(session: Session, *, limit: int) -> list[Invoice]:
    """Open invoices with a declined charge (in dunning), the most recent decline first."""
    last_decline = (
        select(PaymentAttempt.invoice_id, func.max(PaymentAttempt.attempted_at).label("at"))
        .where(PaymentAttempt.status == ChargeOutcome.DECLINED)
        .group_by(PaymentAttempt.invoice_id)
        .subquery()
    )
    query = (
        select(Invoice)
        .join(last_decline, last_decline.c.invoice_id == Invoice.id)
        .where(Invoice.status == InvoiceStatus.OPEN)
        .order_by(last_decline.c.at.desc(), Invoice.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def period_invoices_since(session: Session, subscription_id: str, since: datetime) -> int:
    """How many period invoices (not prorations) the subscription got since ``since``."""
    count = session.scalar(
        select(func.count()).where(
            Invoice.subscription_id == subscription_id,
            Invoice.business_key.like(f"invoice:{subscription_id}:%"),
            # Billing time (the workflow's, as ``since`` is), not the row's wall-clock
            # created_at: under a test clock the two are years apart.
            Invoice.issued_at >= since,
        )
    )
    return int(count or 0)


def paid_invoice_counts(session: Session, subscription_ids: Iterable[str]) -> dict[str, int]:
    """Paid invoices per subscription (a subscription with none is left out)."""
    rows = session.execute(
        select(Invoice.subscription_id, func.count())
        .where(Invoice.subscription_id.in_(subscription_ids), Invoice.status == InvoiceStatus.PAID)
        .group_by(Invoice.subscription_id)
    ).all()
    return {sub_id: int(count) for sub_id, count in rows}


def first_period_starts(session: Session, subscription_ids: Iterable[str]) -> dict[str, datetime]:
    """The start of each subscription's first period invoice (its billing anchor, unless
    the workflow moved the anchor later); a subscription with none is left out."""
    rows = session.execute(
        select(Invoice.subscription_id, func.min(Invoice.period_start))
        .where(
            Invoice.subscription_id.in_(subscription_ids),
            # A period invoice's key (a proration's is another): see period_invoices_since.
            Invoice.business_key.like("invoice:%"),
        )
        .group_by(Invoice.subscription_id)
    ).all()
    return {sub_id: start for sub_id, start in rows if start is not None}
