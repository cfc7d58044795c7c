"""Customers: created here and at Stripe, with a test card becoming their default; found
by a search; their card on file and credit balance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stripe as stripe_sdk
from sqlalchemy.orm import Session, sessionmaker

from billing.money import normalize_currency
from kakin.adapters.stripe_gateway import CardSummary, StripeGateway
from kakin.services.errors import InvalidRequestError, UnavailableError
from kakin.services.shaping import Reads, shaped, shaped_page
from kakin.services.staff import Origin
from kakin.services.webhook_events import record_customer_created, record_customer_updated
from models.repositories import audit as audit_sql
from models.repositories import credit_notes as credit_sql
from models.repositories import customers as customer_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories.common import InvalidCursorError, new_id
from models.tables import Customer, utcnow


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
    actor: str | None = None,
    origin: Origin | None = None,
) -> str:
    """Create the customer here and at Stripe; a test card becomes a PaymentMethod.

    ``actor`` (a staff member in the console) is written to the audit log with the
    customer, in the same transaction, with the ``origin`` of the request.
    """
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
        customer = Customer(
            id=customer_id,
            email=email,
            name=name,
            locale=locale,
            currency=currency,
            time_zone=time_zone,
            stripe_customer_id=stripe_customer_id,
            stripe_payment_method_id=payment_method_id,
        )
        session.add(customer)
        record_customer_created(session, customer)  # outgoing webhooks, with the row
        if actor:
            audit_sql.audit(
                session, entity_type="customer", entity_id=customer_id, action="created",
                actor=actor[:200], occurred_at=utcnow(),
                details={**(origin or Origin()).details(), "has_card": bool(payment_method_id)},
            )  # fmt: skip
        session.commit()
    return customer_id


# --- reads and the update, for the faces (each shapes a row inside its session) ---

T = TypeVar("T")
R = TypeVar("R")

_customers = Reads(Customer, "Customer")
find_customer, get_customer, list_customers = _customers.find, _customers.get, _customers.page


def search_customers(
    sessions: sessionmaker[Session],
    shape: Callable[[Customer], T],
    *,
    text: str,
    limit: int,
    starting_after: str | None,
) -> tuple[list[T], bool]:
    """A page of the customers whose name or email holds ``text`` or whose id starts
    with it (blank: everyone), newest first, and whether more follow.

    Raises ``InvalidRequestError`` for a ``starting_after`` that is not in the list.
    """
    try:
        return shaped_page(
            sessions,
            lambda session: customer_sql.search(
                session, text, limit=limit, starting_after=starting_after
            ),
            shape,
        )
    except InvalidCursorError as error:
        raise InvalidRequestError(str(error)) from None


def count_customers(sessions: sessionmaker[Session]) -> int:
    """How many customers there are (a form refused stores none)."""
    with sessions() as session:
        return customer_sql.count(session)


def credit_balance(sessions: sessionmaker[Session], customer_id: str) -> tuple[int, str]:
    """What the customer's credit notes left to spend on their next invoices, in their
    currency: ``(amount, currency)``."""

    def read(session: Session) -> tuple[int, str]:
        row = find_customer(session, customer_id)
        return credit_sql.credit_balance(session, row.id, row.currency), row.currency

    return shaped(sessions, read, lambda balance: balance)


def card_on_file(
    sessions: sessionmaker[Session], stripe: StripeGateway, customer_id: str
) -> CardSummary | None:
    """The brand and last 4 of the customer's default card, asked of Stripe (kakin keeps
    only the PaymentMethod's id); None when they have none.

    Raises ``UnavailableError`` when Stripe cannot be asked.
    """
    method = get_customer(sessions, customer_id, lambda row: row.stripe_payment_method_id)
    if not method:
        return None
    try:
        return stripe.card_summary(method)
    except stripe_sdk.StripeError as error:
        raise UnavailableError("Stripe did not say which card the customer has") from error


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
        if changes:
            record_customer_updated(session, row.id)  # outgoing webhooks, with the change
        session.commit()
        return shape(row)


def _customer_pages(
    pages: Callable[..., tuple[list[R], bool]],
) -> Callable[..., tuple[list[Any], bool]]:
    """``list_...(sessions, customer_id, shape, *, limit, starting_after)``: a page of
    ``pages`` filtered by the customer, who must exist (``NotFoundError``: not so)."""

    def list_of(
        sessions: sessionmaker[Session],
        customer_id: str,
        shape: Callable[[R], T],
        *,
        limit: int,
        starting_after: Any,
    ) -> tuple[list[T], bool]:
        def read(session: Session) -> tuple[list[R], bool]:
            find_customer(session, customer_id)
            return pages(
                session, customer_id=customer_id, limit=limit, starting_after=starting_after
            )

        return shaped_page(sessions, read, shape)

    return list_of


list_customer_invoices = _customer_pages(invoice_sql.invoices)
list_customer_payments = _customer_pages(payment_sql.customer_payments)
