"""The activity objects a worker runs, built from one set of dependencies.

The worker (kakin/runtime.py), the tests and the bench build them together; each
activity is called on the object of its concern (``bundle.payments.charge_invoice``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from sqlalchemy.orm import Session, sessionmaker

from activities.invoicing import InvoicingActivities
from activities.notifications import NotificationActivities
from activities.payments import PaymentActivities
from activities.renewals import RenewalActivities
from activities.sessions import activity_sessions
from kakin.adapters.mailer import Mailer
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.invoice_documents import Seller


@dataclass(frozen=True)
class Activities:
    """The invoicing, payment and notification activities of one worker, and the
    renewal's issue-and-charge made of the first two."""

    invoicing: InvoicingActivities
    payments: PaymentActivities
    notifications: NotificationActivities
    renewals: RenewalActivities

    def all(self) -> list[Callable[..., Any]]:
        """Every activity method, for ``Worker(activities=...)``."""
        return [
            *self.invoicing.activities(),
            *self.payments.activities(),
            *self.notifications.activities(),
            *self.renewals.activities(),
        ]


def build_activities(
    *,
    session_factory: sessionmaker[Session],
    stripe: StripeGateway,
    mailer: Mailer,
    templates: jinja2.Environment,
    seller: Seller,
) -> Activities:
    session_factory = activity_sessions(session_factory)  # cancellation waits for the session
    invoicing = InvoicingActivities(
        session_factory=session_factory, templates=templates, seller=seller
    )
    payments = PaymentActivities(session_factory=session_factory, stripe=stripe)
    return Activities(
        invoicing=invoicing,
        payments=payments,
        notifications=NotificationActivities(
            session_factory=session_factory, mailer=mailer, templates=templates, seller=seller
        ),
        renewals=RenewalActivities(invoicing=invoicing, payments=payments),
    )
