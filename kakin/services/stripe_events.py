"""Stripe webhooks: verify, claim once, and tell the subscription's workflow.

Stripe tells us about payments that complete outside our charge call (a hosted page,
a delayed confirmation) and about new default cards. Stripe's real traffic is late
(retried for days), duplicated (sometimes concurrently) and out of order, so each
event is:

1. verified: the ``Stripe-Signature`` header (HMAC-SHA256 with the endpoint secret,
   through the real ``stripe`` SDK) and its timestamp, within ``tolerance`` seconds
   of now, in the past or the future;
2. claimed once by event id: the row is stored, then one delivery takes a lease on it
   (a conditional UPDATE, so it holds on PostgreSQL and SQLite alike) and marks it
   processed when its work is done. A copy arriving meanwhile waits for that (then it
   is acknowledged, ``duplicate``, without effect); a copy after a crash finds the
   lease run out and does the work. A processed id changes nothing (acknowledged:
   Stripe redelivers until it sees a 2xx). One whose processing failed (Temporal or
   the database down: 503) gives its lease back and is processed on redelivery;
3. applied, each kind as written in ``dispatch``: a payment becomes ``payment_received``
   unless kakin has it already; a card event makes kakin follow Stripe's *current*
   default card (read from Stripe, whatever the event carried), so a late, older event
   cannot put back a stale card. A workflow that has ended is not an error: the event
   is acknowledged and its ``outcome`` says why it did nothing.

The database work runs in threads (``asyncio.to_thread``), never on the event loop:
the API serves every request from one loop, and a webhook waiting for a row lock or
a database coming back must not hold up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import ledger, payments
from kakin.services.errors import InvalidRequestError, UnavailableError
from kakin.services.subscriptions import handle
from models.payloads import InvoiceStatus, PaymentMethodUpdated
from models.repositories import audit as audit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories import webhooks as webhook_sql
from models.repositories.common import find, get
from models.tables import Invoice, PaymentAttempt, WebhookEvent, utcnow

ACTOR = "stripe-webhook"
# A claim older than this belongs to a delivery that died (a signal takes well under
# a second): a redelivery after it may take over.
LEASE = timedelta(seconds=60)
# How long a concurrent copy waits for the delivery that holds the claim to finish.
WAIT_SECONDS = 10.0

log = logging.getLogger("kakin.webhooks")


class WebhookRejectedError(InvalidRequestError):
    """The request is not a genuine, fresh Stripe event; the message says why."""


class WebhookBusyError(UnavailableError, RuntimeError):
    """Another delivery of this event holds it and has not finished: redeliver later."""


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    duplicate: bool
    signals: int  # how many workflows were told
    result: str = ""  # what the event did, or why nothing (stored on its row)


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
    # The SDK bounds only the past: a timestamp ahead of our clock by more than the
    # same tolerance is as suspect (a signature made to be replayed later).
    stamps = [p[2:] for p in signature.split(",") if p.strip().startswith("t=")]
    if stamps and stamps[0].strip().isdigit() and int(stamps[0]) > time.time() + tolerance:
        raise WebhookRejectedError(
            "the Stripe signature does not verify: timestamp is in the future"
        )
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRejectedError("the body is not JSON") from None
    if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt_"):
        raise WebhookRejectedError("the body is not a Stripe event")
    return event


# -- storing and claiming -------------------------------------------------------------


def store_once(sessions: sessionmaker[Session], event: dict[str, Any]) -> bool:
    """Record the event (once); False if it was already processed (a replay)."""
    with sessions() as session:
        known = find(session, WebhookEvent, event["id"])
        if known is not None:
            return known.processed_at is None
        session.add(WebhookEvent(id=event["id"], type=str(event.get("type", "")), payload=event))
        try:
            session.commit()
        except IntegrityError:  # stored by a copy at the same moment: fine, it is there
            session.rollback()
    return True


def _try_claim(sessions: sessionmaker[Session], event_id: str) -> str | None:
    """A claim token if this delivery now holds the event, else None.

    One conditional UPDATE: on PostgreSQL a concurrent one waits for the row lock and
    then finds the claim taken; SQLite serializes writers. Either way one wins.
    """
    token = secrets.token_hex(8)
    now = utcnow()
    with sessions() as session:
        taken = webhook_sql.take_claim(session, event_id, token=token, now=now, until=now + LEASE)
        session.commit()
    return token if taken else None


async def claim(
    sessions: sessionmaker[Session], event: dict[str, Any], *, wait: float = WAIT_SECONDS
) -> str | None:
    """Store the event and claim it: a token to process it, or None if it was processed.

    While another delivery holds it, wait for that one (up to ``wait`` seconds):
    None once it is processed; its claim if it ran out (that delivery died). Still
    held after the wait: ``WebhookBusyError`` (503), so Stripe delivers it again
    rather than be told "done" about work that may yet fail.
    """
    if not await asyncio.to_thread(store_once, sessions, event):
        return None
    deadline = time.monotonic() + wait
    while True:
        token = await asyncio.to_thread(_try_claim, sessions, event["id"])
        if token is not None:
            return token
        if await asyncio.to_thread(_processed, sessions, event["id"]):
            return None
        if time.monotonic() >= deadline:
            raise WebhookBusyError(f"event {event['id']} is being processed by another delivery")
        await asyncio.sleep(0.1)


def _processed(sessions: sessionmaker[Session], event_id: str) -> bool:
    with sessions() as session:
        return get(session, WebhookEvent, event_id).processed_at is not None


def _previous_outcome(sessions: sessionmaker[Session], event_id: str) -> str | None:
    with sessions() as session:
        return get(session, WebhookEvent, event_id).outcome


def mark_processed(
    sessions: sessionmaker[Session], event_id: str, token: str | None = None, outcome: str = ""
) -> None:
    with sessions() as session:
        row = get(session, WebhookEvent, event_id)
        if token is not None and row.claim_token != token:
            # Our lease ran out and another delivery took over: it finishes the work.
            log.warning("webhook %s: claim lost while processing", event_id)
            return
        row.processed_at = utcnow()
        row.outcome = outcome[:200] or None
        row.claim_token = None
        row.claimed_until = None
        session.commit()


def release(sessions: sessionmaker[Session], event_id: str, token: str) -> None:
    """Give the claim back (processing failed): Stripe's redelivery may process at once."""
    with sessions() as session:
        webhook_sql.give_back_claim(session, event_id, token)
        session.commit()


# -- what each event does ------------------------------------------------------------------


def _ended(error: RPCError) -> bool:
    """Temporal's answer for a workflow that has completed (or never existed)."""
    return error.status == RPCStatusCode.NOT_FOUND


async def _payment_succeeded(
    client: Client,
    sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway | None,
    data: dict[str, Any],
) -> tuple[int, str]:
    invoice_id = str((data.get("metadata") or {}).get("kakin_invoice_id") or "")
    intent_id = str(data.get("id") or "")
    known = await asyncio.to_thread(_invoice_and_attempt, sessions, invoice_id, intent_id)
    if known is None:
        return 0, "not one of our invoices"
    subscription_id, status, own = known
    if status == InvoiceStatus.PAID:
        # Our own charge (or an earlier event) recorded it: the workflow would ignore
        # the signal, which would cost a Temporal action and a task per renewal.
        return 0, f"invoice {invoice_id} already paid"
    if own == "pending":
        # Our charge is in flight and retrieves this intent itself when it retries.
        return 0, f"our charge of {invoice_id} in flight records it"
    try:
        await payments.report_payment(
            client, subscription_id, invoice_id=invoice_id,
            payment_intent_id=intent_id, requested_by=ACTOR,
        )  # fmt: skip
    except RPCError as error:
        if not _ended(error):
            raise
        return 0, await asyncio.to_thread(
            _late_payment, sessions, stripe_gateway, invoice_id, intent_id
        )
    return 1, f"payment_received sent for {invoice_id}"


def _invoice_and_attempt(
    sessions: sessionmaker[Session], invoice_id: str, intent_id: str
) -> tuple[str, str, str | None] | None:
    """(subscription, invoice status, our attempt's status for the intent), or None
    when the invoice is not ours."""
    with sessions() as session:
        invoice = find(session, Invoice, invoice_id) if invoice_id else None
        if invoice is None:
            return None
        own = payment_sql.attempt_status_by_intent(session, intent_id)
        return invoice.subscription_id, invoice.status, own


def _late_payment(
    sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway | None,
    invoice_id: str,
    intent_id: str,
) -> str:
    """A payment for an invoice whose subscription's workflow has ended.

    Money was taken, so the books must show it: an invoice still open (a final
    invoice whose charge failed) or written off (uncollectible) is marked paid, once
    Stripe itself confirms the intent succeeded for it and covers what is due. The
    subscription stays canceled; no receipt is sent (the workflow that sends them has
    ended); a void invoice is left as it is and the outcome says so (refund by hand).
    """
    if stripe_gateway is None:
        return "subscription ended; payment not checked at Stripe"
    state = stripe_gateway.retrieve_intent(intent_id)
    with sessions() as session:
        invoice = invoice_sql.invoice_for_update(session, invoice_id)
        if invoice.status == InvoiceStatus.PAID:
            return f"subscription ended; invoice {invoice_id} already paid"
        if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) or (
            state.status != "succeeded"
            or state.invoice_id != invoice.id
            or state.currency != invoice.currency
            or state.amount < invoice.amount_due
        ):
            log.warning(
                "webhook: payment %s (%s) for invoice %s (%s) of an ended subscription "
                "not applied", intent_id, state.status, invoice_id, invoice.status,
            )  # fmt: skip
            return f"subscription ended; not applied to {invoice.status} invoice {invoice_id}"
        previous = invoice.status
        now = utcnow()
        attempt = PaymentAttempt(
            business_key=f"external:{state.id}", invoice_id=invoice.id, attempt=0,
            amount=state.amount, currency=invoice.currency, status="succeeded",
            stripe_payment_intent_id=state.id, attempted_at=now,
        )  # fmt: skip
        session.add(attempt)
        invoice.status = InvoiceStatus.PAID
        invoice.amount_paid = invoice.total - invoice.credit_applied
        invoice.paid_at = now
        audit_sql.audit(
            session, entity_type="invoice", entity_id=invoice.id, action="paid",
            from_status=previous, to_status=InvoiceStatus.PAID, actor=ACTOR, occurred_at=now,
            details={"attempt": 0, "payment_intent": state.id, "subscription_ended": True},
        )  # fmt: skip
        # A late payment: the periods it would have counted in may have closed, and the
        # booking rule puts it in the one open now (recorded_at is now).
        ledger.record_payment(session, invoice, attempt, actor=ACTOR, status_before=previous)
        session.commit()
    return f"subscription ended; {previous} invoice {invoice_id} marked paid"


def _follow_default(
    sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway | None,
    customer_id: str,
    stripe_customer: str,
    hinted: str | None,
    event_id: str,
) -> tuple[str | None, bool]:
    """(Stripe's current default card, whether this call made it kakin's card).

    The customer's row is locked while Stripe is asked (PostgreSQL): two card events
    of one customer processed at once ask one after the other, so the later claim
    is never an older answer. Stripe's current default decides, not the event:
    events arrive late and out of order, and attaching a card does not make it the
    default.
    """
    with sessions() as session:
        payment_sql.lock_customer(session, customer_id)
        if stripe_gateway is not None:
            method = stripe_gateway.default_payment_method(stripe_customer)
        else:
            method = hinted
        if not method:
            return None, False
        claimed = payments.claim_payment_method(
            session, customer_id, method, actor=ACTOR, occurred_at=utcnow()
        )
        if claimed:  # in the same transaction: a crash before the signals is redone
            webhook_sql.set_outcome(session, event_id, f"applying {method}")
        session.commit()
    return method, claimed


def _customer_of(sessions: sessionmaker[Session], stripe_customer: str) -> str | None:
    with sessions() as session:
        customer = payment_sql.customer_by_stripe_id(session, stripe_customer)
        return None if customer is None else customer.id


def _live_subscriptions(sessions: sessionmaker[Session], customer_id: str) -> list[str]:
    with sessions() as session:
        return list(subscription_sql.live_subscription_ids(session, customer_id))


async def _card_event(
    client: Client,
    sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway | None,
    stripe_customer: str,
    hinted: str | None,
    *,
    event_id: str,
    previous: str | None,
) -> tuple[int, str]:
    """Follow Stripe's current default card; tell the live subscriptions once per change."""
    customer_id = await asyncio.to_thread(_customer_of, sessions, stripe_customer)
    if customer_id is None:
        return 0, "not one of our customers"
    method, claimed = await asyncio.to_thread(
        _follow_default, sessions, stripe_gateway, customer_id, stripe_customer, hinted, event_id
    )
    if not method:
        return 0, "no default card at Stripe"
    if not claimed and previous != f"applying {method}":
        return 0, f"card {method} already current"
    subscriptions = await asyncio.to_thread(_live_subscriptions, sessions, customer_id)
    told = 0
    for subscription_id in subscriptions:
        try:
            await handle(client, subscription_id).signal(
                contracts.SIGNAL_PAYMENT_METHOD_UPDATED,
                # No id: the card is on file already. With one, the workflow would
                # record it again when it gets to the signal, and of two changes close
                # together it could put back the older card for a moment.
                PaymentMethodUpdated(payment_method_id=None, requested_by=ACTOR),
            )
            told += 1
        except RPCError as error:
            if not _ended(error):
                raise
    return told, f"card {method} applied"


async def dispatch(
    client: Client,
    sessions: sessionmaker[Session],
    event: dict[str, Any],
    *,
    stripe_gateway: StripeGateway | None = None,
    previous: str | None = None,
) -> tuple[int, str]:
    """Apply the event: (how many workflows were signalled, what it did)."""
    kind = event.get("type")
    data = (event.get("data") or {}).get("object") or {}
    if kind == "payment_intent.succeeded":
        return await _payment_succeeded(client, sessions, stripe_gateway, data)
    if kind in ("customer.updated", "payment_method.attached"):
        stripe_customer = data.get("id") if kind == "customer.updated" else data.get("customer")
        hinted = (
            (data.get("invoice_settings") or {}).get("default_payment_method")
            if kind == "customer.updated"
            else None  # attached is not default: without Stripe to ask, nothing changes
        )
        if not stripe_customer:
            return 0, "no customer"
        return await _card_event(
            client, sessions, stripe_gateway, str(stripe_customer),
            str(hinted) if hinted else None, event_id=str(event["id"]), previous=previous,
        )  # fmt: skip
    # payment_intent.payment_failed and the rest: our charge call already knows.
    return 0, f"{kind} is not used"


async def receive(
    client: Client,
    sessions: sessionmaker[Session],
    payload: bytes,
    signature: str | None,
    *,
    secret: str,
    tolerance: int = 300,
    stripe_gateway: StripeGateway | None = None,
    wait: float = WAIT_SECONDS,
) -> Outcome:
    """Verify, claim once, dispatch. ``WebhookRejectedError`` for a bad request;
    ``WebhookBusyError`` while another delivery holds the event; ``RPCError`` and
    database errors when Temporal or the database cannot be reached (the claim is
    given back, so Stripe's redelivery processes it)."""
    event = verify(payload, signature, secret=secret, tolerance=tolerance)
    kind = str(event.get("type", ""))
    token = await claim(sessions, event, wait=wait)
    if token is None:
        return Outcome(event["id"], kind, duplicate=True, signals=0)
    try:
        previous = await asyncio.to_thread(_previous_outcome, sessions, event["id"])
        signals, result = await dispatch(
            client, sessions, event, stripe_gateway=stripe_gateway, previous=previous
        )
    except BaseException:
        try:
            await asyncio.to_thread(release, sessions, event["id"], token)
        except Exception:  # the database is down: the lease runs out instead
            log.warning("webhook %s: could not give the claim back", event["id"])
        raise
    await asyncio.to_thread(mark_processed, sessions, event["id"], token, result)
    return Outcome(event["id"], kind, duplicate=False, signals=signals, result=result)
