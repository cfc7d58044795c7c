"""The audit log: who did what to which subscription, invoice or customer, and why.
Rows are written with the change they record, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from models.repositories.common import InvalidCursorError, find
from models.tables import AuditLog, Invoice, Subscription


def audited(session: Session, entity_id: str, action: str, occurred_at: datetime) -> bool:
    """Whether this exact event is in the audit log already (a retried activity)."""
    return (
        session.scalars(
            select(AuditLog.id).where(
                AuditLog.entity_id == entity_id,
                AuditLog.action == action,
                AuditLog.occurred_at == occurred_at,
            )
        ).first()
        is not None
    )


def audit(
    session: Session,
    *,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: str,
    occurred_at: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason,
            details=details or {},
            occurred_at=occurred_at,
        )
    )


def audit_entries(
    session: Session,
    *,
    limit: int,
    starting_after: int | None = None,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditLog], bool]:
    """One page of the audit log, newest first (as recorded: by id), and whether more follow.

    ``subscription_id``: the subscription's rows and its invoices'. ``customer_id``: the
    customer's rows, its subscriptions' and its invoices'. ``actor``: exactly that actor,
    or an API key's rows by its id alone (``api-key:key_1`` matches ``api-key:key_1 (shop
    backend)``). ``since``/``until``: when it happened (``occurred_at``), from ``since``
    included to ``until`` excluded. ``starting_after``: the last id of the previous page.
    """
    entity, entity_id = AuditLog.entity_type, AuditLog.entity_id
    conditions: list[ColumnElement[bool]] = []
    if subscription_id:
        invoices = select(Invoice.id).where(Invoice.subscription_id == subscription_id)
        conditions.append(
            or_(
                and_(entity == "subscription", entity_id == subscription_id),
                and_(entity == "invoice", entity_id.in_(invoices)),
            )
        )
    if customer_id:
        subscriptions = select(Subscription.id).where(Subscription.customer_id == customer_id)
        invoices = select(Invoice.id).where(Invoice.customer_id == customer_id)
        conditions.append(
            or_(
                and_(entity == "customer", entity_id == customer_id),
                and_(entity == "subscription", entity_id.in_(subscriptions)),
                and_(entity == "invoice", entity_id.in_(invoices)),
            )
        )
    if actor:
        conditions.append(
            or_(AuditLog.actor == actor, AuditLog.actor.startswith(f"{actor} (", autoescape=True))
        )
    if action:
        conditions.append(AuditLog.action == action)
    if since is not None:
        conditions.append(AuditLog.occurred_at >= since)
    if until is not None:
        conditions.append(AuditLog.occurred_at < until)
    if starting_after is not None:
        if find(session, AuditLog, starting_after) is None:
            raise InvalidCursorError(f"starting_after {starting_after!r} is not an id in this list")
        conditions.append(AuditLog.id < starting_after)
    query = select(AuditLog).where(*conditions).order_by(AuditLog.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


def audit_entries_after(session: Session, floor: int) -> list[AuditLog]:
    """Audit entries with an id above ``floor``, oldest first."""
    return list(session.scalars(select(AuditLog).where(AuditLog.id > floor).order_by(AuditLog.id)))


def reached_status(
    session: Session, entity_id: str, status: str, *, actor: str | None = None
) -> bool:
    """Whether the audit log records ``entity_id`` moving to ``status`` (by ``actor``)."""
    conditions = [AuditLog.entity_id == entity_id, AuditLog.to_status == status]
    if actor is not None:
        conditions.append(AuditLog.actor == actor)
    return bool(session.scalar(select(func.count()).where(*conditions)))


def last_action_times(session: Session, *, entity_type: str, action: str) -> dict[str, datetime]:
    """Per entity, when ``action`` last happened to it (entities without it left out)."""
    rows = session.execute(
        select(AuditLog.entity_id, func.max(AuditLog.occurred_at))
        .where(AuditLog.entity_type == entity_type, AuditLog.action == action)
        .group_by(AuditLog.entity_id)
    ).all()
    return {entity_id: at for entity_id, at in rows if at is not None}
