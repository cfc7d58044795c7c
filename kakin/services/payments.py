"""Payments outside the workflow's own charge: a new card, a payment Stripe reports.

The card on file is claimed once here (``claim_payment_method``), so of the CLI, the
API and the webhook Stripe sends for one change, exactly one tells the workflows.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.errors import InvalidRequestError
from kakin.services.subscriptions import handle
from kakin.services.webhook_events import record_customer_updated
from models.payloads import InvoiceStatus, PaymentMethodUpdated, PaymentReceived
from models.repositories import audit as audit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import NotFoundError
from models.tables import utcnow


async def update_payment_method(
    client: Client,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    subscription_id: str,
    *,
    card_number: str,
    requested_by: str,
) -> str:
    """Attach a new (test) card, make it Stripe's default, tell the workflow (retries if unpaid).

    Stripe's default is set too: it is the source of truth that ``customer.updated``
    events are checked against, so a later unrelated event does not switch back. The
    change is claimed once (``claim_payment_method``): the ``customer.updated`` that
    Stripe sends for it then finds the card current and signals nothing more.
    The database and Stripe are called from a thread, off the event loop.
    """
    payment_method_id, claimed = await asyncio.to_thread(
        _attach_card, sessions, stripe, subscription_id, card_number, requested_by
    )
    if claimed:
        # No id in the signal: the card is on file already (an id would make the
        # workflow record it again, later, possibly over a newer card).
        await handle(client, subscription_id).signal(
            contracts.SIGNAL_PAYMENT_METHOD_UPDATED,
            PaymentMethodUpdated(payment_method_id=None, requested_by=requested_by),
        )
    return payment_method_id


def _attach_card(
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    subscription_id: str,
    card_number: str,
    requested_by: str,
) -> tuple[str, bool]:
    """(the new card at Stripe, made its default; whether this call made it ours)."""
    with sessions() as session:
        customer = subscription_sql.subscription(session, subscription_id).customer
        customer_id, stripe_customer_id = customer.id, customer.stripe_customer_id
    if not stripe_customer_id:
        raise InvalidRequestError("the customer has no Stripe customer to attach a card to")
    payment_method_id = stripe.create_test_payment_method(
        card_number=card_number, stripe_customer_id=stripe_customer_id
    )
    stripe.set_default_payment_method(
        stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id
    )
    with sessions() as session:
        claimed = claim_payment_method(
            session, customer_id, payment_method_id, actor=requested_by, occurred_at=utcnow()
        )
        session.commit()
    return payment_method_id, claimed


def claim_payment_method(
    session: Session, customer_id: str, payment_method_id: str, *, actor: str, occurred_at: datetime
) -> bool:
    """Make ``payment_method_id`` the customer's card here, once; False if it already is.

    One conditional UPDATE, so of two callers applying the same card change at once
    (the CLI and the webhook Stripe sends for it, or two copies of one event) exactly
    one gets True and tells the workflows: one charge retry per card change. The
    workflow's ``record_payment_method`` then finds the card current and does nothing.
    """
    if not payment_sql.set_payment_method_if_other(session, customer_id, payment_method_id):
        return False
    audit_sql.audit(
        session, entity_type="customer", entity_id=customer_id, action="payment_method_updated",
        actor=actor, occurred_at=occurred_at, details={"payment_method_id": payment_method_id},
    )  # fmt: skip
    record_customer_updated(session, customer_id)  # outgoing webhooks, with the change
    return True


async def report_payment(
    client: Client,
    subscription_id: str,
    *,
    invoice_id: str,
    payment_intent_id: str,
    requested_by: str = "stripe-webhook",
) -> None:
    """Tell the workflow Stripe took a payment outside our charge (e.g. from a webhook)."""
    await handle(client, subscription_id).signal(
        contracts.SIGNAL_PAYMENT_RECEIVED,
        PaymentReceived(
            invoice_id=invoice_id, payment_intent_id=payment_intent_id, requested_by=requested_by
        ),
    )


async def retry_payment_now(client: Client, subscription_id: str, *, requested_by: str) -> None:
    """Charge the invoice in dunning again at once, with the card on file."""
    await handle(client, subscription_id).signal(
        contracts.SIGNAL_PAYMENT_METHOD_UPDATED,
        PaymentMethodUpdated(payment_method_id=None, requested_by=requested_by),
    )


# --- for the card-update page (api/payment_page.py) ---


def card_update_context(
    sessions: sessionmaker[Session], subscription_id: str
) -> dict[str, Any] | None:
    """What the card-update page shows: the customer and their oldest unpaid invoice
    (None when there is no such subscription)."""
    with sessions() as session:
        try:
            subscription = subscription_sql.subscription(session, subscription_id)
        except NotFoundError:
            return None
        customer = subscription.customer
        invoices, _ = invoice_sql.invoices(session, customer_id=customer.id, limit=100)
        unpaid = [
            i for i in invoices
            if i.subscription_id == subscription.id and i.status == InvoiceStatus.OPEN
        ]  # fmt: skip
        oldest = min(unpaid, key=lambda i: i.period_start) if unpaid else None
        return {
            "customer_name": customer.name,
            "locale": customer.locale,
            "currency": customer.currency,
            "amount_due": oldest.total - oldest.amount_paid if oldest else None,
            "invoice_number": oldest.number if oldest else None,
            # The period the unpaid invoice bills, on the customer's calendar.
            "time_zone": customer.time_zone,
            "period_start": oldest.period_start if oldest else None,
            "period_end": oldest.period_end if oldest else None,
        }
