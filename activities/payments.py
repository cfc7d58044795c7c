"""Payment activities: an invoice charged through Stripe, a payment Stripe reports
recorded, the customer's new card recorded.

A charge takes effect once: its business key (``charge:<invoice id>:<attempt>``) is
unique in the database and is Stripe's idempotency key; a retried activity is the same
attempt and resumes the stored PaymentIntent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from billing.stripe_rules import charge_step, chargeable, minimum_charge
from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform import metrics
from kakin.services import ledger
from kakin.services.webhook_events import record_customer_updated
from models.payloads import (
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    ExternalPayment,
    InvoiceStatus,
    PaymentMethodChange,
    SubscriptionStatus,
)
from models.repositories import audit as audit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories import subscriptions as subscription_sql
from models.tables import (
    Invoice,
    PaymentAttempt,
)

log = logging.getLogger("activities.billing")  # the name operators filter on


class PaymentActivities:
    """Payment activities, with their dependencies injected."""

    def __init__(self, *, session_factory: sessionmaker[Session], stripe: StripeGateway) -> None:
        self._sessions = session_factory
        self._stripe = stripe

    @activity.defn(name=contracts.ACTIVITY_CHARGE_INVOICE)
    def charge_invoice(self, request: ChargeRequest) -> ChargeResult:
        """Charge an open invoice off-session; a decline is an answer, not an error.

        Network errors, 5xx and 429 from Stripe raise, and Temporal retries them with
        backoff: the retry is the *same* attempt (same key), so it resumes the stored
        PaymentIntent rather than creating a second charge.
        """
        key = f"charge:{request.invoice_id}:{request.attempt}"
        if request.test_clock and self._stripe.live_mode:
            raise ApplicationError(
                "test clocks are refused with a live Stripe key",
                type="LiveModeRefused",
                non_retryable=True,
            )
        with self._sessions() as session:
            invoice = invoice_sql.invoice(session, request.invoice_id)
            attempt = payment_sql.payment_attempt(session, key)
            if attempt is not None and attempt.status != "pending":
                return _result(attempt)  # this attempt already finished: same answer
            if invoice.status == InvoiceStatus.PAID:
                return ChargeResult(ChargeOutcome.SUCCEEDED, message="invoice already paid")
            if invoice.status != InvoiceStatus.OPEN:
                raise ApplicationError(
                    f"invoice {invoice.id} is {invoice.status}, only open invoices are charged",
                    type="InvoiceNotOpen",
                    non_retryable=True,
                )
            if attempt is None:
                attempt = PaymentAttempt(
                    business_key=key,
                    invoice_id=invoice.id,
                    attempt=request.attempt,
                    amount=invoice.amount_due,
                    currency=invoice.currency,
                    status="pending",
                    attempted_at=request.attempted_at,
                )
                session.add(attempt)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    attempt = payment_sql.payment_attempt(session, key, required=True)
            if attempt.status != "pending":
                return _result(attempt)
            try:
                result = self._charge(session, invoice, attempt, key)
            except Exception:
                metrics.charge_failed()
                raise
            _count(request, invoice, attempt, result)
            return result

    def _charge(
        self, session: Session, invoice: Invoice, attempt: PaymentAttempt, key: str
    ) -> ChargeResult:
        """A pending attempt charged through Stripe (or declined before Stripe), settled.

        The PaymentIntent is stored before it is confirmed, so a retry after a crash
        resumes it rather than create a second charge.
        """
        if attempt.amount <= 0:
            return self._settle(session, invoice, attempt, "succeeded", None, "")

        currency = attempt.currency
        if attempt.stripe_payment_intent_id is None and not chargeable(attempt.amount, currency):
            # Invoices are composed chargeable (billing.stripe_rules); one finalized
            # before that rule would only be refused by Stripe, retry after retry.
            # Declined with the reason instead, so support can void it or write it off.
            least = minimum_charge(currency)
            return self._settle(
                session, invoice, attempt, "declined", "amount_not_chargeable",
                f"Stripe cannot charge {attempt.amount} minor units of {currency} "
                f"(steps of {charge_step(currency)}{f', at least {least}' if least else ''})",
            )  # fmt: skip

        customer = invoice.customer
        if not customer.stripe_customer_id or not customer.stripe_payment_method_id:
            return self._settle(
                session, invoice, attempt, "declined", "no_payment_method",
                "the customer has no payment method on file",
            )  # fmt: skip

        fresh = attempt.stripe_payment_intent_id is None
        if fresh:
            attempt.stripe_payment_intent_id = self._stripe.create_intent(
                amount=attempt.amount,
                currency=attempt.currency,
                stripe_customer_id=customer.stripe_customer_id,
                payment_method_id=customer.stripe_payment_method_id,
                metadata={
                    "kakin_key": key,
                    "kakin_invoice_id": invoice.id,
                    "kakin_invoice_number": invoice.number or "",
                },
                idempotency_key=f"{key}:create",
            )
            # Stored before confirming: a retry after a crash resumes this intent.
            session.commit()

        intent_id = attempt.stripe_payment_intent_id
        assert intent_id is not None
        # Two Stripe requests per charge: a fresh intent is confirmed at once; only a
        # retry, which cannot know how far the last try got, asks Stripe first.
        state = None if fresh else self._stripe.retrieve_intent(intent_id)
        if state is None or state.status == "requires_confirmation":
            state = self._stripe.confirm_intent(intent_id, idempotency_key=f"{key}:confirm")
        if state.status == "succeeded":
            return self._settle(session, invoice, attempt, "succeeded", None, "")
        if state.status == "processing":
            raise ApplicationError("payment is still processing at Stripe", type="Processing")
        if state.status == "requires_action":
            return self._settle(
                session, invoice, attempt, "declined", "authentication_required",
                "the bank asks the customer to authenticate this payment",
            )  # fmt: skip
        return self._settle(
            session, invoice, attempt, "declined",
            state.decline_code or "card_declined", state.message,
        )  # fmt: skip

    def _settle(
        self,
        session: Session,
        invoice: Invoice,
        attempt: PaymentAttempt,
        status: str,
        decline_code: str | None,
        message: str,
        *,
        actor: str = "workflow",
    ) -> ChargeResult:
        """Record an attempt's outcome, and a paid invoice, in one transaction."""
        attempt.status = status
        attempt.decline_code = decline_code
        attempt.failure_message = message or None
        previous = invoice.status
        if status == "succeeded":
            invoice.status = InvoiceStatus.PAID
            invoice.amount_paid = invoice.total - invoice.credit_applied - invoice.carried_forward
            invoice.paid_at = attempt.attempted_at
            audit_sql.audit(
                session,
                entity_type="invoice",
                entity_id=invoice.id,
                action="paid",
                from_status=previous,
                to_status=InvoiceStatus.PAID,
                actor=actor,
                occurred_at=attempt.attempted_at,
                details={
                    "attempt": attempt.attempt,
                    "payment_intent": attempt.stripe_payment_intent_id,
                },
            )
        ledger.record_payment(session, invoice, attempt, actor=actor, status_before=previous)
        session.commit()
        return _result(attempt)

    @activity.defn(name=contracts.ACTIVITY_RECORD_EXTERNAL_PAYMENT)
    def record_external_payment(self, payment: ExternalPayment) -> bool:
        """Record a payment made outside our charge, after Stripe confirms it.

        The webhook that reported it is signed, but the amount and the invoice are
        still checked against Stripe itself: True only if the PaymentIntent succeeded,
        belongs to this invoice and covers what is due. Recorded once per intent.
        """
        state = self._stripe.retrieve_intent(payment.payment_intent_id)
        with self._sessions() as session:
            invoice = invoice_sql.invoice_for_update(session, payment.invoice_id)
            if invoice.status == InvoiceStatus.PAID:
                return True
            due = invoice.amount_due
            if (
                state.status != "succeeded"
                or state.invoice_id != invoice.id
                or state.currency != invoice.currency
                or state.amount < due
                or invoice.status != InvoiceStatus.OPEN
            ):
                log.warning(
                    "payment %s not applied to invoice %s: status %s, invoice %r, %s %s for %s due",
                    state.id, invoice.id, state.status, state.invoice_id,
                    state.amount, state.currency, due,
                )  # fmt: skip
                return False
            attempt = payment_sql.attempt_by_intent(session, state.id)
            if attempt is None:
                attempt = PaymentAttempt(
                    business_key=f"external:{state.id}",
                    invoice_id=invoice.id,
                    attempt=0,
                    amount=state.amount,
                    currency=invoice.currency,
                    status="pending",
                    stripe_payment_intent_id=state.id,
                    attempted_at=payment.occurred_at,
                )
                session.add(attempt)
            self._settle(session, invoice, attempt, "succeeded", None, "", actor=payment.actor)
            return True

    @activity.defn(name=contracts.ACTIVITY_RECORD_PAYMENT_METHOD)
    def record_payment_method(self, change: PaymentMethodChange) -> None:
        """Make a new payment method the customer's default for future charges."""
        with self._sessions() as session:
            customer = subscription_sql.subscription(session, change.subscription_id).customer
            if customer.stripe_payment_method_id == change.payment_method_id:
                return
            customer.stripe_payment_method_id = change.payment_method_id
            audit_sql.audit(
                session,
                entity_type="customer",
                entity_id=customer.id,
                action="payment_method_updated",
                actor=change.actor,
                occurred_at=change.occurred_at,
                details={"payment_method_id": change.payment_method_id},
            )
            record_customer_updated(session, customer.id)  # outgoing webhooks, with it
            session.commit()

    def activities(self) -> list[Any]:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.charge_invoice, self.record_external_payment, self.record_payment_method]


def _count(
    request: ChargeRequest, invoice: Invoice, attempt: PaymentAttempt, result: ChargeResult
) -> None:
    """The metrics of a settled attempt: the charge, and for a renewal's first attempt
    how the renewal ended and how long after its due time it was charged."""
    succeeded = result.outcome == ChargeOutcome.SUCCEEDED
    charged = attempt.amount > 0  # nothing owed: settled without a charge
    if charged:
        metrics.charge_settled(succeeded=succeeded, decline_code=result.decline_code)
    if request.attempt > 1:
        if charged:
            metrics.dunning_step("retry")  # a new attempt: the ladder's (or support's) retry
        return
    # A period's invoice (invoice:<subscription>:<period>) of a running subscription is a
    # renewal's; the final usage invoice of an ended one has a key of the same form.
    renewal = invoice.business_key.startswith("invoice:")
    if not renewal or invoice.subscription.status == SubscriptionStatus.CANCELED:
        return
    metrics.renewal_finished("skipped" if not charged else "paid" if succeeded else "failed")
    if charged and not request.test_clock:
        # The wall clock is right for an operating figure (no billing date comes from
        # it); a test clock's period starts are on another calendar.
        metrics.renewal_charge_lag(time.time() - invoice.period_start.timestamp())


def _result(attempt: PaymentAttempt) -> ChargeResult:
    if attempt.status == "succeeded":
        return ChargeResult(
            ChargeOutcome.SUCCEEDED, payment_intent_id=attempt.stripe_payment_intent_id
        )
    return ChargeResult(
        ChargeOutcome.DECLINED,
        payment_intent_id=attempt.stripe_payment_intent_id,
        decline_code=attempt.decline_code,
        message=attempt.failure_message or "",
    )
