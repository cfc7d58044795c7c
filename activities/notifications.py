"""Notification activities: the email about each business event, sent once, with the
invoice (page and PDF) it is about.
"""

from __future__ import annotations

import time
from typing import Any

import jinja2
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from kakin import contracts
from kakin.adapters import links
from kakin.adapters.mailer import Attachment, Mailer, OutgoingEmail, PermanentEmailError
from kakin.adapters.rendering import (
    InvoiceDocument,
    render_email,
)
from kakin.platform import metrics
from kakin.services.invoice_documents import Seller, invoice_document, invoice_html, invoice_pdf
from kakin.services.invoices import (
    apply_invoice_change,
)
from kakin.services.subscriptions import apply_subscription_change
from models.payloads import (
    EmailRequest,
)
from models.repositories import emails as email_sql
from models.repositories import invoices as invoice_sql
from models.repositories import subscriptions as subscription_sql
from models.tables import Invoice, Subscription


class NotificationActivities:
    """Email activities, with their dependencies injected."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        mailer: Mailer,
        templates: jinja2.Environment,
        seller: Seller,
    ) -> None:
        self._sessions = session_factory
        self._mailer = mailer
        self._templates = templates
        self._seller = seller

    @activity.defn(name=contracts.ACTIVITY_RENDER_AND_EMAIL)
    def render_and_email(self, request: EmailRequest) -> None:
        """Render the invoice, then send the email about it: one action for both."""
        if request.invoice_id is None:
            raise ApplicationError("render_and_email needs an invoice", non_retryable=True)
        with self._sessions() as session:  # as render_invoice does
            invoice = invoice_sql.invoice(session, request.invoice_id)
            invoice.html = invoice_html(invoice, self._seller, self._templates)
            session.commit()
        self.send_email(request)

    @activity.defn(name=contracts.ACTIVITY_SEND_EMAIL)
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
            sent = email_sql.email_by_key(session, request.business_key)
            if sent is not None and sent.status == "sent":
                return
            subscription = subscription_sql.subscription(session, request.subscription_id)
            customer = subscription.customer
            invoice = (
                invoice_sql.invoice(session, request.invoice_id) if request.invoice_id else None
            )
            content = render_email(
                self._templates,
                request.kind,
                customer.locale,
                self._email_context(request, subscription, invoice),
            )
            if sent is None:
                sent = email_sql.new_email(
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
                metrics.email_written(request.kind)  # once per key: a dunning step reached
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
                    with metrics.sending_email(request.kind):
                        provider_id = self._mailer.send(message)
            except PermanentEmailError as error:
                raise ApplicationError(
                    str(error), type="PermanentEmailError", non_retryable=True
                ) from error
            sent.status = "sent"
            sent.provider_message_id = provider_id
            sent.sent_at = request.occurred_at
            session.commit()

    def _email_context(
        self, request: EmailRequest, subscription: Subscription, invoice: Invoice | None
    ) -> dict[str, Any]:
        """What the email's templates are given."""
        customer = subscription.customer
        # Link expiry is not a billing date: the real clock is right here.
        expires = int(time.time()) + links.LINK_LIFETIME_SECONDS
        return {
            "customer_name": customer.name,
            "subscription_id": subscription.id,
            "seller_name": self._seller.name,
            "time_zone": customer.time_zone,
            "invoice": self._document(invoice) if invoice else None,
            "payment_update_url": links.payment_update_url(
                self._seller.payment_update_url,
                subscription.id,
                expires=expires,
                secret=self._seller.link_secret,
            ),
            # Every email links the customer's billing page (when the seller serves one).
            "billing_page_url": self._billing_page_url(subscription.id, expires),
            "next_retry_at": request.next_retry_at,
            "cancel_at": request.cancel_at,
            "cancel_reason": subscription.cancel_reason,
            # Only a cancellation at period end has an end date still to come.
            "ends_at": (
                subscription.current_period_end if subscription.cancel_at_period_end else None
            ),
        }

    def _billing_page_url(self, subscription_id: str, expires: int) -> str | None:
        if not self._seller.billing_page_url:
            return None
        return links.billing_page_url(
            self._seller.billing_page_url,
            subscription_id,
            expires=expires,
            secret=self._seller.link_secret,
        )

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
        return [self.render_and_email, self.send_email]
