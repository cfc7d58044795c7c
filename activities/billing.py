"""Split into activities/invoicing.py, payments.py and notifications.py (issue 12).

``BillingActivities`` stays as one small facade: it builds the three activity classes
from one set of dependencies (the worker, the tests and the bench build it so) and
lists all their activities. On the class, each activity is the function its new class
defines, so ``workflow.execute_activity_method(BillingActivities.charge_invoice, ...)``
keeps its name until every workflow calls activities by ``kakin.contracts`` names; on
an instance, it is that class's bound method. This module goes when nothing uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import jinja2
from sqlalchemy.orm import Session, sessionmaker

from activities.invoicing import InvoicingActivities
from activities.notifications import NotificationActivities
from activities.payments import PaymentActivities
from kakin.adapters.mailer import Mailer
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.invoice_documents import Seller, invoice_document, invoice_pdf

__all__ = ["BillingActivities", "Seller", "invoice_document", "invoice_pdf"]


F = TypeVar("F", bound=Callable[..., Any])


class _Activity(Generic[F]):
    """One activity of a part: its defined function on the class, bound on an instance."""

    def __init__(self, part: str, function: F) -> None:
        self._part = part
        self._function = function

    @overload
    def __get__(self, instance: None, owner: type) -> F: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Any: ...
    def __get__(self, instance: object, owner: type) -> Any:
        if instance is None:
            return self._function
        return getattr(getattr(instance, self._part), self._function.__name__)


class BillingActivities:
    """The invoicing, payment and notification activities, built together."""

    create_invoice = _Activity("invoicing", InvoicingActivities.create_invoice)
    create_final_invoice = _Activity("invoicing", InvoicingActivities.create_final_invoice)
    finalize_invoice = _Activity("invoicing", InvoicingActivities.finalize_invoice)
    issue_invoice = _Activity("invoicing", InvoicingActivities.issue_invoice)
    render_invoice = _Activity("invoicing", InvoicingActivities.render_invoice)
    change_plan = _Activity("invoicing", InvoicingActivities.change_plan)
    record_invoice_change = _Activity("invoicing", InvoicingActivities.record_invoice_change)
    record_subscription_change = _Activity(
        "invoicing", InvoicingActivities.record_subscription_change
    )
    charge_invoice = _Activity("payments", PaymentActivities.charge_invoice)
    record_external_payment = _Activity("payments", PaymentActivities.record_external_payment)
    record_payment_method = _Activity("payments", PaymentActivities.record_payment_method)
    render_and_email = _Activity("notifications", NotificationActivities.render_and_email)
    send_email = _Activity("notifications", NotificationActivities.send_email)

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        stripe: StripeGateway,
        mailer: Mailer,
        templates: jinja2.Environment,
        seller: Seller,
    ) -> None:
        self.invoicing = InvoicingActivities(
            session_factory=session_factory, templates=templates, seller=seller
        )
        self.payments = PaymentActivities(session_factory=session_factory, stripe=stripe)
        self.notifications = NotificationActivities(
            session_factory=session_factory, mailer=mailer, templates=templates, seller=seller
        )

    def activities(self) -> list[Any]:
        """Every activity method of the three, for ``Worker(activities=...)``."""
        return [
            *self.invoicing.activities(),
            *self.payments.activities(),
            *self.notifications.activities(),
        ]
