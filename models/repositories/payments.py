"""Payments and the card on file: attempts by business key or PaymentIntent, a
customer's payments, the declined ones since, a customer by Stripe id, the card
claimed once; an invoice's attempts. Callers own the session and commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models.repositories.common import NotFoundError, page
from models.tables import Customer, Invoice, PaymentAttempt


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


def paid_intent(session: Session, invoice_id: str) -> str | None:
    """The PaymentIntent that paid the invoice, if our charge did."""
    return session.scalar(
        select(PaymentAttempt.stripe_payment_intent_id).where(
            PaymentAttempt.invoice_id == invoice_id, PaymentAttempt.status == "succeeded"
        )
    )


def customer_payments(
    session: Session, customer_id: str, *, limit: int, starting_after: int | None
) -> tuple[list[PaymentAttempt], bool]:
    """A page of the payment attempts on the customer's invoices, newest first."""
    invoices = select(Invoice.id).where(Invoice.customer_id == customer_id)
    where = PaymentAttempt.invoice_id.in_(invoices)
    return page(session, PaymentAttempt, limit=limit, starting_after=starting_after, where=where)


def invoice_payments(session: Session, invoice_id: str) -> list[PaymentAttempt]:
    """The payment attempts on one invoice, in the order they were made."""
    return list(
        session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.invoice_id == invoice_id)
            .order_by(PaymentAttempt.attempted_at, PaymentAttempt.id)
        )
    )


def declined_attempts_after(
    session: Session, floor: int, subscription_ids: Sequence[str]
) -> list[PaymentAttempt]:
    """Declined charges of these subscriptions' invoices with an id above ``floor``."""
    return list(
        session.scalars(
            select(PaymentAttempt)
            .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
            .where(
                PaymentAttempt.id > floor,
                PaymentAttempt.status == "declined",
                Invoice.subscription_id.in_(subscription_ids),
            )
            .order_by(PaymentAttempt.id)
        )
    )


def attempt_by_intent(session: Session, intent_id: str) -> PaymentAttempt | None:
    """The payment attempt that holds this PaymentIntent (ours or an external one)."""
    return session.scalars(
        select(PaymentAttempt).where(PaymentAttempt.stripe_payment_intent_id == intent_id)
    ).one_or_none()


def attempt_status_by_intent(session: Session, intent_id: str) -> str | None:
    """The status of our attempt that created this PaymentIntent, if one did."""
    return session.scalars(
        select(PaymentAttempt.status).where(PaymentAttempt.stripe_payment_intent_id == intent_id)
    ).first()


def customer_by_stripe_id(session: Session, stripe_customer_id: str) -> Customer | None:
    return session.scalars(
        select(Customer).where(Customer.stripe_customer_id == stripe_customer_id)
    ).one_or_none()


def lock_customer(session: Session, customer_id: str) -> None:
    """Lock the customer's row until the transaction ends (PostgreSQL; SQLite serializes)."""
    session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())


def set_payment_method_if_other(session: Session, customer_id: str, payment_method_id: str) -> bool:
    """Make it the customer's card unless it already is: one conditional UPDATE, so of
    two callers at once exactly one gets True."""
    changed = session.execute(
        update(Customer)
        .where(
            Customer.id == customer_id,
            or_(
                Customer.stripe_payment_method_id.is_(None),
                Customer.stripe_payment_method_id != payment_method_id,
            ),
        )
        .values(stripe_payment_method_id=payment_method_id)
    )
    return getattr(changed, "rowcount", 0) == 1
