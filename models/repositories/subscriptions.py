"""Subscriptions: by id, the live ones of a customer, stored statuses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.payloads import SubscriptionStatus
from models.repositories.common import get
from models.tables import Subscription


def subscription(session: Session, subscription_id: str) -> Subscription:
    return get(session, Subscription, subscription_id)


def live_subscription_ids(session: Session, customer_id: str) -> list[str]:
    """The customer's subscriptions that are not canceled."""
    return list(
        session.scalars(
            select(Subscription.id).where(
                Subscription.customer_id == customer_id,
                Subscription.status != SubscriptionStatus.CANCELED,
            )
        )
    )


def subscription_statuses(session: Session, subscription_ids: Iterable[str]) -> dict[str, str]:
    """The stored status of each of these subscriptions."""
    rows = session.execute(
        select(Subscription.id, Subscription.status).where(Subscription.id.in_(subscription_ids))
    ).all()
    return {sub_id: status for sub_id, status in rows}


def subscriptions_in(
    session: Session, statuses: Iterable[str], ids: Sequence[str] | None = None
) -> list[Subscription]:
    """Every subscription in one of ``statuses`` (of ``ids`` if given), oldest first."""
    query = select(Subscription).where(Subscription.status.in_(list(statuses)))
    if ids is not None:
        query = query.where(Subscription.id.in_(ids))
    return list(session.scalars(query.order_by(Subscription.created_at, Subscription.id)))
