"""Billing activities: every side effect of a subscription's workflow.

Each activity is safe to run more than once. Its business key (``invoice:...``,
``charge:...``, ``email:...``) is unique in the database, so a retry finds the row
its first try wrote and finishes that work instead of doing it again.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import jinja2
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from billing.money import format_amount
from billing.proration import prorate
from billing.rounding import RoundingMode
from billing.stripe_rules import charge_step, chargeable, minimum_charge, settle
from kakin.adapters import links
from kakin.adapters.mailer import Attachment, Mailer, OutgoingEmail, PermanentEmailError
from kakin.adapters.rendering import (
    InvoiceDocument,
    render_email,
    render_invoice_html,
)
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.invoice_documents import Seller, invoice_document, invoice_pdf
from kakin.services.invoices import (
    Draft,
    apply_invoice_change,
    closing_period,
    compose,
    line_rows,
    period_draft,
    usage_lines,
)
from kakin.services.subscriptions import apply_subscription_change
from models import repositories as repo
from models import usage as usage_sql
from models.payloads import (
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    CreateInvoiceRequest,
    EmailRequest,
    ExternalPayment,
    FinalInvoiceRequest,
    FinalizeInvoiceRequest,
    InvoiceChange,
    InvoiceRef,
    InvoiceStatus,
    PaymentMethodChange,
    PlanChange,
    RenderInvoiceRequest,
    SubscriptionChange,
)
from models.tables import (
    CreditTransaction,
    Invoice,
    InvoiceLine,
    PaymentAttempt,
    Price,
    Subscription,
)

log = logging.getLogger(__name__)


class BillingActivities:
    """Activities with their dependencies injected, so tests can point them anywhere."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        stripe: StripeGateway,
        mailer: Mailer,
        templates: jinja2.Environment,
        seller: Seller,
    ) -> None:
        self._sessions = session_factory
        self._stripe = stripe
        self._mailer = mailer
        self._templates = templates
        self._seller = seller

    # -- invoices ---------------------------------------------------------------------

    @activity.defn
    def create_invoice(self, request: CreateInvoiceRequest) -> InvoiceRef:
        """Create the draft invoice for one period (once per period, whatever retries).

        It bills the plan for the new period and the usage of the period it closes.
        The subscription row is locked first: usage ingestion holds it shared, so an
        event is either in this invoice or refused as late, never lost in between.
        """
        key = f"invoice:{request.subscription_id}:{request.period_index}"
        with self._sessions() as session:
            existing = repo.invoice_by_key(session, key)
            if existing is not None:
                return _ref(existing)
            subscription = usage_sql.lock_subscription(session, request.subscription_id)
            draft = period_draft(
                session,
                subscription,
                period_start=request.period_start,
                period_end=request.period_end,
                usage_period=closing_period(subscription, request.period_start),
                rounding=RoundingMode(self._seller.tax_rounding),
            )
            invoice = self._store_draft(
                session,
                key,
                subscription,
                draft,
                period_start=request.period_start,
                period_end=request.period_end,
                issued_at=request.issued_at,
            )
            # The subscription's current period is the one just invoiced.
            subscription.current_period_start = request.period_start
            subscription.current_period_end = request.period_end
            try:
                session.commit()
            except IntegrityError:  # a concurrent try of this same activity won
                session.rollback()
                return _ref(repo.invoice_by_key(session, key, required=True))
            return _ref(invoice)

    @activity.defn
    def create_final_invoice(self, request: FinalInvoiceRequest) -> InvoiceRef | None:
        """The usage of an ended subscription's last period, billed in arrears.

        None when there is nothing to bill (no metered prices, or no usage cost). The
        subscription is canceled already, so ingestion refuses new events; every event
        it accepted in the open period is on this invoice.
        """
        key = f"invoice:{request.subscription_id}:{request.period_index}"
        with self._sessions() as session:
            existing = repo.invoice_by_key(session, key)
            if existing is not None:
                return _ref(existing)
            subscription = usage_sql.lock_subscription(session, request.subscription_id)
            start, end = subscription.current_period_start, subscription.current_period_end
            if start is None or end is None:
                return None
            charges = usage_lines(session, subscription, start=start, end=end)
            if sum(line.amount for line in charges) <= 0:
                return None
            draft = compose(
                session, subscription, charges, rounding=RoundingMode(self._seller.tax_rounding)
            )
            invoice = self._store_draft(
                session, key, subscription, draft,
                period_start=start, period_end=end, issued_at=request.ended_at,
            )  # fmt: skip
            try:
                session.commit()
            except IntegrityError:  # a concurrent try of this same activity won
                session.rollback()
                return _ref(repo.invoice_by_key(session, key, required=True))
            return _ref(invoice)

    def _store_draft(
        self,
        session: Session,
        key: str,
        subscription: Subscription,
        draft: Draft,
        *,
        period_start: datetime,
        period_end: datetime,
        issued_at: datetime,
    ) -> Invoice:
        """Add the draft as an invoice (and the credit it spends) to the session."""
        invoice = Invoice(
            id=repo.new_id("in"),
            business_key=key,
            subscription_id=subscription.id,
            customer_id=subscription.customer_id,
            status=InvoiceStatus.DRAFT,
            currency=draft.currency,
            subtotal=draft.totals.subtotal,
            discount_total=draft.totals.discount_total,
            tax_total=draft.totals.exclusive_tax + draft.totals.inclusive_tax,
            total=draft.totals.total,
            credit_applied=draft.totals.credit_applied,
            carried_forward=draft.carried_forward,
            tax_breakdown=draft.tax_breakdown,
            period_start=period_start,
            period_end=period_end,
            issued_at=issued_at,
            lines=line_rows(draft),
        )
        session.add(invoice)
        if draft.totals.credit_applied:
            # Spent in the same transaction as the invoice: credit is used once (and a
            # debit, a negative credit_applied, is collected once).
            session.add(
                CreditTransaction(
                    business_key=f"applied:{key}",
                    customer_id=subscription.customer_id,
                    currency=draft.currency,
                    amount=-draft.totals.credit_applied,
                    invoice_id=invoice.id,
                )
            )
        _carry_forward(session, key, invoice)
        return invoice

    @activity.defn
    def finalize_invoice(self, request: FinalizeInvoiceRequest) -> InvoiceRef:
        """Number the invoice and open it. Numbers are gapless and never reused."""
        with self._sessions() as session:
            # Locked, so a retry racing a slow first try waits and then sees its number.
            invoice = repo.invoice_for_update(session, request.invoice_id)
            if invoice.number is None:
                number = repo.take_invoice_number(session, request.finalized_at)
                self._open(session, invoice, number, request.finalized_at)
                # Number, status and audit commit together: a rollback frees the number.
                session.commit()
            return _ref(invoice)

    @activity.defn
    def issue_invoice(self, request: CreateInvoiceRequest) -> InvoiceRef:
        """Create a period's invoice and finalize it, in one activity.

        Two steps, each safe to repeat, under one activity: a renewal costs one
        Temporal action less (billed per action on Temporal Cloud). The first try
        creates, numbers and opens the invoice in one transaction (one session, one
        commit); a retry that finds the invoice finishes it as finalize_invoice does.
        """
        key = f"invoice:{request.subscription_id}:{request.period_index}"
        with self._sessions() as session:
            existing = repo.invoice_by_key(session, key)
            if existing is None:
                issued = self._issue_new(session, key, request)
                try:
                    session.commit()  # number, invoice and audit together: gapless
                    return _ref(issued)
                except IntegrityError:  # a concurrent try of this same activity won
                    session.rollback()  # (and gives the number it took back)
                    existing = repo.invoice_by_key(session, key, required=True)
            if existing.number is not None:
                return _ref(existing)
            invoice_id = existing.id
        return self.finalize_invoice(
            FinalizeInvoiceRequest(invoice_id=invoice_id, finalized_at=request.issued_at)
        )

    def _open(self, session: Session, invoice: Invoice, number: str, at: datetime) -> None:
        """A draft becomes an open invoice under ``number`` (uncommitted), with its audit row."""
        invoice.number = number
        invoice.registration_number = self._seller.registration_number
        invoice.status = InvoiceStatus.OPEN
        invoice.finalized_at = at
        repo.audit(
            session,
            entity_type="invoice",
            entity_id=invoice.id,
            action="finalized",
            from_status=InvoiceStatus.DRAFT,
            to_status=InvoiceStatus.OPEN,
            actor="workflow",
            occurred_at=at,
            details={"number": invoice.number, "total": invoice.total},
        )

    def _issue_new(self, session: Session, key: str, request: CreateInvoiceRequest) -> Invoice:
        """create_invoice then finalize_invoice's changes, unflushed, for issue_invoice."""
        subscription = usage_sql.lock_subscription(session, request.subscription_id)
        draft = period_draft(
            session,
            subscription,
            period_start=request.period_start,
            period_end=request.period_end,
            usage_period=closing_period(subscription, request.period_start),
            rounding=RoundingMode(self._seller.tax_rounding),
        )
        # Taken before the invoice is added (no autoflush of a numberless row), locked
        # until the commit: numbers go out in commit order.
        number = repo.take_invoice_number(session, request.issued_at)
        invoice = self._store_draft(
            session,
            key,
            subscription,
            draft,
            period_start=request.period_start,
            period_end=request.period_end,
            issued_at=request.issued_at,
        )
        self._open(session, invoice, number, request.issued_at)
        # The subscription's current period is the one just invoiced.
        subscription.current_period_start = request.period_start
        subscription.current_period_end = request.period_end
        return invoice

    @activity.defn
    def render_and_email(self, request: EmailRequest) -> None:
        """Render the invoice, then send the email about it: one action for both."""
        if request.invoice_id is None:
            raise ApplicationError("render_and_email needs an invoice", non_retryable=True)
        self.render_invoice(RenderInvoiceRequest(invoice_id=request.invoice_id))
        self.send_email(request)

    @activity.defn
    def render_invoice(self, request: RenderInvoiceRequest) -> None:
        """Render the invoice's HTML (Jinja2) and keep it with the invoice."""
        with self._sessions() as session:
            invoice = repo.invoice(session, request.invoice_id)
            invoice.html = render_invoice_html(self._templates, self._document(invoice))
            session.commit()

    @activity.defn
    def change_plan(self, change: PlanChange) -> InvoiceRef | None:
        """Switch the price; for a change now, a draft invoice of the prorated difference.

        The price switch and the proration invoice commit together under one business
        key, so a retry finds the invoice (or, with nothing to charge, finds the price
        already switched and prorates nothing).
        """
        key = f"proration:{change.subscription_id}:{change.period_index}:{change.price_id}"
        with self._sessions() as session:
            existing = repo.invoice_by_key(session, key)
            if existing is not None:
                return _ref(existing)
            subscription = repo.subscription(session, change.subscription_id)
            old, new = subscription.price, repo.price(session, change.price_id)
            if old.id == new.id:
                return None
            subscription.price_id = new.id
            repo.audit(
                session,
                entity_type="subscription",
                entity_id=subscription.id,
                action="plan_changed",
                actor=change.actor,
                reason=change.reason,
                occurred_at=change.occurred_at,
                details={"from_price": old.id, "to_price": new.id},
            )
            invoice = None
            if change.prorate_from is not None:
                assert change.period_start is not None and change.period_end is not None
                invoice = self._proration_invoice(
                    key, subscription, old, new, change.prorate_from,
                    change.period_start, change.period_end,
                )  # fmt: skip
                if invoice is not None:
                    session.add(invoice)
                    _carry_forward(session, key, invoice)
            session.commit()
            return _ref(invoice) if invoice is not None else None

    def _proration_invoice(
        self,
        key: str,
        subscription: Subscription,
        old: Price,
        new: Price,
        at: datetime,
        period_start: datetime,
        period_end: datetime,
    ) -> Invoice | None:
        quantity = subscription.quantity
        result = prorate(
            old_amount=old.unit_amount * quantity,
            new_amount=new.unit_amount * quantity,
            period_start=period_start,
            period_end=period_end,
            at=at,
        )
        if result.net <= 0:
            return None  # nothing owed now (customer credit comes with credit notes)
        lines = [
            (f"Unused time on {old.nickname or old.product.name}", -result.credit, "proration"),
            (f"Remaining time on {new.nickname or new.product.name}", result.charge, "proration"),
        ]
        # Charged at once, so Stripe's rules apply as to a period's invoice.
        settled = settle(result.net, new.currency)
        if settled.rounding:
            step = format_amount(charge_step(new.currency), new.currency)
            lines.append(
                (f"Rounding (Stripe charges {new.currency} in steps of {step})",
                 settled.rounding, "rounding")
            )  # fmt: skip
        invoice = Invoice(
            id=repo.new_id("in"),
            business_key=key,
            subscription_id=subscription.id,
            customer_id=subscription.customer_id,
            status=InvoiceStatus.DRAFT,
            currency=new.currency,
            subtotal=result.net,
            total=result.net + settled.rounding,
            carried_forward=settled.carried_forward,
            period_start=at,
            period_end=period_end,
            issued_at=at,
            lines=[
                InvoiceLine(
                    position=position,
                    description=description,
                    kind=kind,
                    unit_amount=amount,
                    quantity=1,
                    amount=amount,
                    period_start=at,
                    period_end=period_end,
                )
                for position, (description, amount, kind) in enumerate(lines)
            ],
        )
        return invoice

    @activity.defn
    def record_invoice_change(self, change: InvoiceChange) -> None:
        with self._sessions() as session:
            apply_invoice_change(session, change)
            session.commit()

    # -- payments -----------------------------------------------------------------------

    @activity.defn
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
            invoice = repo.invoice(session, request.invoice_id)
            attempt = repo.payment_attempt(session, key)
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
                    attempt = repo.payment_attempt(session, key, required=True)
            if attempt.status != "pending":
                return _result(attempt)
            if attempt.amount <= 0:
                return self._settle(session, invoice, attempt, "succeeded", None, "")

            currency = attempt.currency
            if attempt.stripe_payment_intent_id is None and not chargeable(
                attempt.amount, currency
            ):
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
        if status == "succeeded":
            previous = invoice.status
            invoice.status = InvoiceStatus.PAID
            invoice.amount_paid = invoice.total - invoice.credit_applied - invoice.carried_forward
            invoice.paid_at = attempt.attempted_at
            repo.audit(
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
        session.commit()
        return _result(attempt)

    @activity.defn
    def record_external_payment(self, payment: ExternalPayment) -> bool:
        """Record a payment made outside our charge, after Stripe confirms it.

        The webhook that reported it is signed, but the amount and the invoice are
        still checked against Stripe itself: True only if the PaymentIntent succeeded,
        belongs to this invoice and covers what is due. Recorded once per intent.
        """
        state = self._stripe.retrieve_intent(payment.payment_intent_id)
        with self._sessions() as session:
            invoice = repo.invoice_for_update(session, payment.invoice_id)
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
            attempt = session.scalars(
                select(PaymentAttempt).where(PaymentAttempt.stripe_payment_intent_id == state.id)
            ).one_or_none()
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

    @activity.defn
    def record_payment_method(self, change: PaymentMethodChange) -> None:
        """Make a new payment method the customer's default for future charges."""
        with self._sessions() as session:
            customer = repo.subscription(session, change.subscription_id).customer
            if customer.stripe_payment_method_id == change.payment_method_id:
                return
            customer.stripe_payment_method_id = change.payment_method_id
            repo.audit(
                session,
                entity_type="customer",
                entity_id=customer.id,
                action="payment_method_updated",
                actor=change.actor,
                occurred_at=change.occurred_at,
                details={"payment_method_id": change.payment_method_id},
            )
            session.commit()

    # -- subscriptions ----------------------------------------------------------------

    @activity.defn
    def record_subscription_change(self, change: SubscriptionChange) -> None:
        """Write a status change to the subscription row and the audit log (once)."""
        with self._sessions() as session:
            apply_subscription_change(session, change)
            session.commit()

    # -- email --------------------------------------------------------------------------

    @activity.defn
    def send_email(self, request: EmailRequest) -> None:
        """Send one email per business event; a retry never sends a second one.

        The row is committed as ``sending`` before the provider is called. A retry that
        finds ``sending`` cannot know whether the last try's send went out before it
        died, so it asks the provider (``Mailer.find``: the outbox file, or SendGrid's
        message search by our key) and sends only if nothing was found.
        """
        if request.invoice_change is not None or request.status_change is not None:
            # What the email announces is recorded first (each change is safe to repeat).
            with self._sessions() as session:
                if request.invoice_change is not None:
                    apply_invoice_change(session, request.invoice_change)
                if request.status_change is not None:
                    apply_subscription_change(session, request.status_change)
                session.commit()
        with self._sessions() as session:
            sent = repo.email_by_key(session, request.business_key)
            if sent is not None and sent.status == "sent":
                return
            subscription = repo.subscription(session, request.subscription_id)
            customer = subscription.customer
            invoice = repo.invoice(session, request.invoice_id) if request.invoice_id else None
            context: dict[str, Any] = {
                "customer_name": customer.name,
                "subscription_id": subscription.id,
                "seller_name": self._seller.name,
                "time_zone": customer.time_zone,
                "invoice": self._document(invoice) if invoice else None,
                # Link expiry is not a billing date: the real clock is right here.
                "payment_update_url": links.payment_update_url(
                    self._seller.payment_update_url,
                    subscription.id,
                    expires=int(time.time()) + links.LINK_LIFETIME_SECONDS,
                    secret=self._seller.link_secret,
                ),
                "next_retry_at": request.next_retry_at,
                "cancel_at": request.cancel_at,
                "cancel_reason": subscription.cancel_reason,
                # Only a cancellation at period end has an end date still to come.
                "ends_at": (
                    subscription.current_period_end if subscription.cancel_at_period_end else None
                ),
            }
            content = render_email(self._templates, request.kind, customer.locale, context)
            if sent is None:
                sent = repo.new_email(
                    session,
                    business_key=request.business_key,
                    kind=request.kind,
                    customer_id=customer.id,
                    subscription_id=subscription.id,
                    invoice_id=request.invoice_id,
                    to_address=customer.email,
                    subject=content.subject,
                    locale=customer.locale,
                )
            message = OutgoingEmail(
                key=request.business_key,
                to_address=customer.email,
                to_name=customer.name,
                from_address=self._seller.email_from,
                from_name=self._seller.email_from_name,
                subject=content.subject,
                html=content.html,
                text=content.text,
                attachments=self._invoice_pdf(invoice),
            )
            try:
                provider_id = None
                if sent.status == "sending":  # an earlier try may have sent it
                    provider_id = self._mailer.find(request.business_key)
                if provider_id is None:
                    sent.status = "sending"
                    session.commit()
                    provider_id = self._mailer.send(message)
            except PermanentEmailError as error:
                raise ApplicationError(
                    str(error), type="PermanentEmailError", non_retryable=True
                ) from error
            sent.status = "sent"
            sent.provider_message_id = provider_id
            sent.sent_at = request.occurred_at
            session.commit()

    # -- helpers ------------------------------------------------------------------------

    def _invoice_pdf(self, invoice: Invoice | None) -> tuple[Attachment, ...]:
        """The finalized invoice as a PDF, for the emails about it (if configured)."""
        if invoice is None or invoice.number is None or not self._seller.attach_invoice_pdf:
            return ()
        pdf = invoice_pdf(invoice, self._seller, self._templates)
        return (Attachment(f"{invoice.number}.pdf", "application/pdf", pdf),)

    def _document(self, invoice: Invoice) -> InvoiceDocument:
        return invoice_document(invoice, self._seller)

    def activities(self) -> list[Any]:
        """Every activity method, for ``Worker(activities=...)``."""
        return [
            self.create_invoice,
            self.create_final_invoice,
            self.issue_invoice,
            self.finalize_invoice,
            self.render_invoice,
            self.render_and_email,
            self.record_invoice_change,
            self.change_plan,
            self.charge_invoice,
            self.record_external_payment,
            self.record_payment_method,
            self.record_subscription_change,
            self.send_email,
        ]


def _ref(invoice: Invoice) -> InvoiceRef:
    return InvoiceRef(
        invoice_id=invoice.id,
        number=invoice.number,
        status=InvoiceStatus(invoice.status),
        amount_due=invoice.amount_due,
        currency=invoice.currency,
    )


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


def _carry_forward(session: Session, key: str, invoice: Invoice) -> None:
    """An invoice below Stripe's minimum charge moves its amount due to the customer's
    balance, as a debit the next invoice collects (as Stripe does); in the invoice's
    transaction, once."""
    if invoice.carried_forward:
        session.add(
            CreditTransaction(
                business_key=f"carried:{key}",
                customer_id=invoice.customer_id,
                currency=invoice.currency,
                amount=-invoice.carried_forward,
                invoice_id=invoice.id,
            )
        )
