"""Customers: created here and at Stripe, with a test card becoming their default."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from billing.money import normalize_currency
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.errors import InvalidRequestError
from models import repositories as repo
from models.tables import Customer


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
    customer_id = repo.new_id("cus")
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
