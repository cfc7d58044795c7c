"""The SQL kakin runs, one function per question. Callers own the session and commit."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import (
    AuditLog,
    Customer,
    EmailMessage,
    Invoice,
    InvoiceNumberSequence,
    PaymentAttempt,
    Price,
    Subscription,
)


class NotFoundError(LookupError):
    """A row that must exist does not; the message names what was looked for."""


def new_id(prefix: str) -> str:
    """Opaque ids like ``sub_3f9c2a...``: unguessable and safe in URLs and logs."""
    return f"{prefix}_{secrets.token_hex(10)}"


T = TypeVar("T")


def _get(session: Session, model: type[T], key: str) -> T:
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(f"{model.__name__.lower()} {key!r} does not exist")
    return row


def customer(session: Session, customer_id: str) -> Customer:
    return _get(session, Customer, customer_id)


def price(session: Session, price_id: str) -> Price:
    return _get(session, Price, price_id)


def subscription(session: Session, subscription_id: str) -> Subscription:
    return _get(session, Subscription, subscription_id)


def invoice(session: Session, invoice_id: str) -> Invoice:
    return _get(session, Invoice, invoice_id)


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


@overload
def payment_attempt(session: Session, key: str, *, required: Literal[True]) -> PaymentAttempt: ...
@overload
def payment_attempt(
    session: Session, key: str, *, required: bool = False
) -> PaymentAttempt | None: ...
def payment_attempt(session: Session, key: str, *, required: bool = False) -> PaymentAttempt | None:
    row = session.scalars(
        select(PaymentAttempt).where(PaymentAttempt.business_key == key)
    ).one_or_none()
    if row is None and required:
        raise NotFoundError(f"no payment attempt with business key {key!r}")
    return row


def email_by_key(session: Session, key: str) -> EmailMessage | None:
    return session.scalars(
        select(EmailMessage).where(EmailMessage.business_key == key)
    ).one_or_none()


def new_email(session: Session, **fields: Any) -> EmailMessage:
    """Insert a pending email row; flushes so a duplicate key fails here, not later."""
    row = EmailMessage(status="pending", **fields)
    session.add(row)
    session.flush()
    return row


def take_invoice_number(session: Session, finalized_at: datetime) -> str:
    """Take the next number of the series, locking it until the caller commits.

    ``FOR UPDATE`` serializes finalizations on PostgreSQL (SQLite serializes writers
    anyway); because the increment commits with the invoice, an aborted transaction
    gives its number back and the series stays gapless.
    """
    sequence = session.scalars(
        select(InvoiceNumberSequence)
        .where(InvoiceNumberSequence.series == "invoice")
        .with_for_update()
    ).one()
    value = sequence.next_value
    sequence.next_value = value + 1
    return f"INV-{value:06d}"


def audit(
    session: Session,
    *,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: str,
    occurred_at: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason,
            details=details or {},
            occurred_at=occurred_at,
        )
    )
