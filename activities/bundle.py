"""The three activity objects a worker runs, built from one set of dependencies.

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
from kakin.adapters.mailer import Mailer
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services.invoice_documents import Seller


@dataclass(frozen=True)
class Activities:
    """The invoicing, payment and notification activities of one worker."""

    invoicing: InvoicingActivities
    payments: PaymentActivities
    notifications: NotificationActivities

    def all(self) -> list[Callable[..., Any]]:
        """Every activity method of the three, for ``Worker(activities=...)``."""
        return [
            *self.invoicing.activities(),
            *self.payments.activities(),
            *self.notifications.activities(),
        ]


def build_activities(
    *,
    session_factory: sessionmaker[Session],
    stripe: StripeGateway,
    mailer: Mailer,
    templates: jinja2.Environment,
    seller: Seller,
) -> Activities:
    return Activities(
        invoicing=InvoicingActivities(
            session_factory=session_factory, templates=templates, seller=seller
        ),
        payments=PaymentActivities(session_factory=session_factory, stripe=stripe),
        notifications=NotificationActivities(
            session_factory=session_factory, mailer=mailer, templates=templates, seller=seller
        ),
    )
