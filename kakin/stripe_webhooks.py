"""Stripe webhooks: verify, store once, and tell the subscription's workflow.

Stripe tells us about payments that complete outside our charge call (a hosted page,
a delayed confirmation) and about new default cards. Each event is:

1. verified: the ``Stripe-Signature`` header (HMAC-SHA256 with the endpoint secret,
   through the real ``stripe`` SDK) and its timestamp, within ``tolerance`` seconds;
2. stored once by event id, and marked processed only after its signals are sent: a
   replayed id that was processed changes nothing (it is acknowledged, not processed
   again: Stripe redelivers until it sees a 2xx, so refusing a genuine redelivery
   would make it retry for days); one whose processing failed (Temporal down) is
   processed again when Stripe redelivers it, so no payment is lost;
3. turned into a signal: ``payment_intent.succeeded`` for one of our invoices becomes
   ``payment_received`` (which the workflow checks against Stripe again before it
   believes it); a new default card (``customer.updated``) or an attached card
   (``payment_method.attached``) becomes ``payment_method_updated``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from kakin import service
from models.payloads import PaymentMethodUpdated, SubscriptionStatus
from models.tables import Customer, Invoice, Subscription, WebhookEvent, utcnow
from workflows.subscription import SubscriptionWorkflow

ACTOR = "stripe-webhook"


class WebhookRejectedError(ValueError):
    """The request is not a genuine, fresh Stripe event; the message says why."""


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    duplicate: bool
    signals: int  # how many workflows were told


def verify(payload: bytes, signature: str | None, *, secret: str, tolerance: int) -> dict[str, Any]:
    """The event, if the signature and timestamp hold; else ``WebhookRejectedError``."""
    if not secret:
        raise WebhookRejectedError("webhooks are disabled: KAKIN_STRIPE_WEBHOOK_SECRET is not set")
    if not signature:
        raise WebhookRejectedError("the Stripe-Signature header is missing")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance)
    except stripe.SignatureVerificationError as error:
        # The SDK says which: no valid signature, or a timestamp outside the window.
        raise WebhookRejectedError(
            f"the Stripe signature does not verify: {error.user_message or error}"
        ) from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRejectedError("the body is not JSON") from None
    if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt_"):
        raise WebhookRejectedError("the body is not a Stripe event")
    return event


def store_once(sessions: sessionmaker[Session], event: dict[str, Any]) -> bool:
    """Record the event; False if it was already processed (a replay)."""
    with sessions() as session:
        known = session.get(WebhookEvent, event["id"])
        if known is not None:
            return known.processed_at is None
        session.add(WebhookEvent(id=event["id"], type=str(event.get("type", "")), payload=event))
        try:
            session.commit()
        except IntegrityError:  # the same event, delivered twice at once: one handles it
            return False
    return True


def mark_processed(sessions: sessionmaker[Session], event_id: str) -> None:
    with sessions() as session:
        row = session.get_one(WebhookEvent, event_id)
        row.processed_at = utcnow()
        session.commit()


def _live_subscriptions(session: Session, customer_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Subscription.id).where(
                Subscription.customer_id == customer_id,
                Subscription.status != SubscriptionStatus.CANCELED,
            )
        )
    )


async def dispatch(client: Client, sessions: sessionmaker[Session], event: dict[str, Any]) -> int:
    """Signal the workflows this event concerns; returns how many were signalled."""
    kind = event.get("type")
    data = (event.get("data") or {}).get("object") or {}
    if kind == "payment_intent.succeeded":
        invoice_id = str((data.get("metadata") or {}).get("kakin_invoice_id") or "")
        with sessions() as session:
            invoice = session.get(Invoice, invoice_id) if invoice_id else None
            subscription_id = invoice.subscription_id if invoice else None
        if subscription_id is None:
            return 0  # not one of ours
        await service.report_payment(
            client, subscription_id, invoice_id=invoice_id,
            payment_intent_id=str(data.get("id")), requested_by=ACTOR,
        )  # fmt: skip
        return 1
    if kind in ("customer.updated", "payment_method.attached"):
        stripe_customer = data.get("id") if kind == "customer.updated" else data.get("customer")
        method = (
            (data.get("invoice_settings") or {}).get("default_payment_method")
            if kind == "customer.updated"
            else data.get("id")
        )
        if not stripe_customer or not method:
            return 0
        with sessions() as session:
            customer = session.scalars(
                select(Customer).where(Customer.stripe_customer_id == stripe_customer)
            ).one_or_none()
            if customer is None or customer.stripe_payment_method_id == method:
                return 0  # not ours, or nothing new
            subscriptions = _live_subscriptions(session, customer.id)
        for subscription_id in subscriptions:
            await service.handle(client, subscription_id).signal(
                SubscriptionWorkflow.payment_method_updated,
                PaymentMethodUpdated(payment_method_id=str(method), requested_by=ACTOR),
            )
        return len(subscriptions)
    return 0  # payment_intent.payment_failed and others: our charge call already knows


async def receive(
    client: Client,
    sessions: sessionmaker[Session],
    payload: bytes,
    signature: str | None,
    *,
    secret: str,
    tolerance: int = 300,
) -> Outcome:
    """Verify, store once, dispatch. Raises ``WebhookRejectedError`` for a bad request."""
    event = verify(payload, signature, secret=secret, tolerance=tolerance)
    kind = str(event.get("type", ""))
    if not store_once(sessions, event):
        return Outcome(event["id"], kind, duplicate=True, signals=0)
    signals = await dispatch(client, sessions, event)  # raises if Temporal is down
    mark_processed(sessions, event["id"])
    return Outcome(event["id"], kind, duplicate=False, signals=signals)
