"""Customers: created here and at Stripe, with a test card becoming their default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from billing.money import normalize_currency
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.errors import InvalidRequestError
from kakin.services.shaping import shaped, shaped_page
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories.common import get, new_id, page
from models.tables import Customer, Invoice, PaymentAttempt


def create_customer(
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    *,
    email: str,
    name: str,
    currency: str,
    locale: str = "en",
    time_zone: str = "UTC",
    card_number: str | None = None,
    payment_method_id: str | None = None,
) -> str:
    """Create the customer here and at Stripe; a test card becomes a PaymentMethod."""
    if "@" not in email:
        raise InvalidRequestError(f"email {email!r} is not an email address")
    try:
        currency = normalize_currency(currency)
    except ValueError as error:
        raise InvalidRequestError(str(error)) from None
    customer_id = new_id("cus")
    stripe_customer_id = stripe.create_customer(
        email=email, name=name, kakin_customer_id=customer_id
    )
    if card_number:
        payment_method_id = stripe.create_test_payment_method(
            card_number=card_number, stripe_customer_id=stripe_customer_id
        )
        # Stripe's default is the card on file (see update_payment_method): a first
        # card left as merely attached would be dropped by the next customer.updated.
        stripe.set_default_payment_method(
            stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id
        )
    with sessions() as session:
        session.add(
            Customer(
                id=customer_id,
                email=email,
                name=name,
                locale=locale,
                currency=currency,
                time_zone=time_zone,
                stripe_customer_id=stripe_customer_id,
                stripe_payment_method_id=payment_method_id,
            )
        )
        session.commit()
    return customer_id


# --- reads and the update, for the faces (each shapes a row inside its session) ---

T = TypeVar("T")


def find_customer(session: Session, customer_id: str) -> Customer:
    """The customer, or a ``NotFoundError`` naming the id."""
    return get(session, Customer, customer_id, "Customer")


def get_customer(
    sessions: sessionmaker[Session], customer_id: str, shape: Callable[[Customer], T]
) -> T:
    return shaped(sessions, lambda session: find_customer(session, customer_id), shape)


def list_customers(
    sessions: sessionmaker[Session],
    shape: Callable[[Customer], T],
    *,
    limit: int,
    starting_after: str | None,
) -> tuple[list[T], bool]:
    return shaped_page(
        sessions,
        lambda session: page(session, Customer, limit=limit, starting_after=starting_after),
        shape,
    )


def update_customer(
    sessions: sessionmaker[Session],
    customer_id: str,
    changes: Mapping[str, Any],
    shape: Callable[[Customer], T],
) -> T:
    """Change the given fields (email, name, locale, time zone); none may be null."""
    with sessions() as session:
        row = find_customer(session, customer_id)
        for field, value in changes.items():
            if value is None:
                raise InvalidRequestError(f"{field} cannot be null")
            setattr(row, field, value)
        session.commit()
        return shape(row)


def list_customer_invoices(
    sessions: sessionmaker[Session],
    customer_id: str,
    shape: Callable[[Invoice], T],
    *,
    limit: int,
    starting_after: str | None,
) -> tuple[list[T], bool]:
    def read(session: Session) -> tuple[list[Invoice], bool]:
        find_customer(session, customer_id)
        return invoice_sql.invoices(
            session, customer_id=customer_id, limit=limit, starting_after=starting_after
        )

    return shaped_page(sessions, read, shape)


def list_customer_payments(
    sessions: sessionmaker[Session],
    customer_id: str,
    shape: Callable[[PaymentAttempt], T],
    *,
    limit: int,
    starting_after: int | None,
) -> tuple[list[T], bool]:
    def read(session: Session) -> tuple[list[PaymentAttempt], bool]:
        find_customer(session, customer_id)
        return payment_sql.customer_payments(
            session, customer_id, limit=limit, starting_after=starting_after
        )

    return shaped_page(sessions, read, shape)
