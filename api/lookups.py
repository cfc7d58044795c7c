"""Existence checks the endpoints share: "load X or 404", before anything is written.

Each raises the service's ``NotFoundError`` naming the missing object (``api.errors``
answers 404). ``ExistingSubscriptionId`` is the same check as a FastAPI dependency, for
an endpoint that needs it before any other work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session, sessionmaker

from api.deps import DepsDep, PathId
from kakin.services import catalog
from kakin.services import customers as customer_service
from kakin.services import invoices as invoice_service
from kakin.services import subscriptions as subscription_service


def require_customer(sessions: sessionmaker[Session], customer_id: str) -> None:
    customer_service.get_customer(sessions, customer_id, lambda _: None)


def require_price(sessions: sessionmaker[Session], price_id: str) -> None:
    catalog.get_price(sessions, price_id, lambda _: None)


def require_subscription(sessions: sessionmaker[Session], subscription_id: str) -> None:
    subscription_service.get_subscription(sessions, subscription_id, lambda _: None)


def require_invoice(sessions: sessionmaker[Session], invoice_id: str) -> None:
    invoice_service.get_invoice(sessions, invoice_id, lambda _: None)


def existing_subscription(deps: DepsDep, subscription_id: PathId) -> str:
    """The path's subscription id, once the subscription is known to exist (else 404)."""
    require_subscription(deps.sessions, subscription_id)
    return subscription_id


ExistingSubscriptionId = Annotated[str, Depends(existing_subscription)]
