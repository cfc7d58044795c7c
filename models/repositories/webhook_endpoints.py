"""Outgoing webhooks' SQL: endpoints, the events after an endpoint's cursors, deliveries
and their tries. (Stripe's incoming webhooks are ``models.repositories.webhooks``.)"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.repositories.common import get
from models.tables import LedgerRow
from models.webhook_tables import OutboxEvent, WebhookDelivery, WebhookEndpoint, WebhookTry


def endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint:
    return get(session, WebhookEndpoint, endpoint_id, "Webhook endpoint")


def endpoints(session: Session, *, enabled_only: bool = False) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if enabled_only:
        query = query.where(WebhookEndpoint.enabled.is_(True))
    return list(session.scalars(query))


def heads(session: Session) -> tuple[int, int]:
    """The newest ledger entry id and outbox event id (0 when empty): where a new
    endpoint's cursors start."""
    ledger = session.scalar(select(func.max(LedgerRow.id))) or 0
    outbox = session.scalar(select(func.max(OutboxEvent.id))) or 0
    return int(ledger), int(outbox)


def ledger_after(session: Session, cursor: int, limit: int) -> Sequence[LedgerRow]:
    return session.scalars(
        select(LedgerRow).where(LedgerRow.id > cursor).order_by(LedgerRow.id).limit(limit)
    ).all()


def outbox_after(session: Session, cursor: int, limit: int) -> Sequence[OutboxEvent]:
    return session.scalars(
        select(OutboxEvent).where(OutboxEvent.id > cursor).order_by(OutboxEvent.id).limit(limit)
    ).all()


def outbox_by_key(session: Session, event_key: str) -> OutboxEvent | None:
    return session.scalars(select(OutboxEvent).where(OutboxEvent.event_key == event_key)).first()


def delivery(session: Session, delivery_id: str) -> WebhookDelivery:
    return get(session, WebhookDelivery, delivery_id, "Webhook delivery")


def delivery_of(session: Session, endpoint_id: str, event_id: str) -> WebhookDelivery | None:
    return session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_id == event_id
        )
    ).first()


def undispatched(session: Session, limit: int) -> list[str]:
    """Deliveries whose workflow was not started yet, oldest first."""
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.dispatched.is_(False))
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
            .limit(limit)
        )
    )


def deliveries(
    session: Session, endpoint_id: str, *, limit: int, status: str | None = None
) -> list[WebhookDelivery]:
    """An endpoint's deliveries, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.limit(limit)))


def tries(session: Session, delivery_id: str) -> list[WebhookTry]:
    return list(
        session.scalars(
            select(WebhookTry)
            .where(WebhookTry.delivery_id == delivery_id)
            .order_by(WebhookTry.run, WebhookTry.number)
        )
    )


def try_of(session: Session, delivery_id: str, run: int, number: int) -> WebhookTry | None:
    return session.scalars(
        select(WebhookTry).where(
            WebhookTry.delivery_id == delivery_id,
            WebhookTry.run == run,
            WebhookTry.number == number,
        )
    ).first()


def delete_endpoint(session: Session, row: WebhookEndpoint) -> None:
    """The endpoint, its deliveries and their tries (explicitly: SQLite does not enforce
    ON DELETE CASCADE unless asked to)."""
    ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == row.id)
    session.execute(delete(WebhookTry).where(WebhookTry.delivery_id.in_(ids)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
    session.delete(row)
