"""The SQL of payments and the card on file: attempts by PaymentIntent, a customer by
Stripe id, the card claimed once. Callers own the session and commit."""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models.tables import Customer, PaymentAttempt


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
