"""Reading stored rows for the terminal (``kakin invoices|customers|subscriptions``,
``kakin usage show``, ``kakin invoices upcoming``): the lookups the CLI used to make
on models.repositories itself. Each takes the caller's session, so the rows stay
loaded while the caller formats them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from models import repositories as repo
from models.tables import Customer, Invoice, Price, Subscription


def list_invoices(
    session: Session,
    *,
    limit: int,
    starting_after: str | None = None,
    status: str | None = None,
    customer_id: str | None = None,
    subscription_id: str | None = None,
) -> tuple[list[Invoice], bool]:
    """Invoices newest first; raises ``InvalidCursorError`` for an unknown cursor."""
    return repo.invoices(
        session,
        limit=limit,
        starting_after=starting_after,
        status=status,
        customer_id=customer_id,
        subscription_id=subscription_id,
    )


def list_customers(
    session: Session, *, limit: int, starting_after: str | None = None
) -> tuple[list[Customer], bool]:
    return repo.page(session, Customer, limit=limit, starting_after=starting_after)


def list_subscriptions(
    session: Session,
    *,
    limit: int,
    starting_after: str | None = None,
    status: str | None = None,
    customer_id: str | None = None,
) -> tuple[list[Subscription], bool]:
    return repo.subscriptions(
        session,
        limit=limit,
        starting_after=starting_after,
        status=status,
        customer_id=customer_id,
    )


def get_invoice(session: Session, invoice_id: str) -> Invoice:
    """Raises ``NotFoundError``."""
    return repo.invoice(session, invoice_id)


def get_subscription(session: Session, subscription_id: str) -> Subscription:
    """Raises ``NotFoundError``."""
    return repo.subscription(session, subscription_id)


def find_price(session: Session, price_id: str) -> Price | None:
    return session.get(Price, price_id)
