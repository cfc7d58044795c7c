"""The SQL of alerts: who watches what, each firing recorded once, the caps' lock."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import String, Table, func, literal, select, text
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.alert_tables import Alert, AlertFiring
from models.tables import EmailMessage, Subscription, UsageEvent


def alert(session: Session, alert_id: str) -> Alert | None:
    return session.get(Alert, alert_id)


def subscription_alerts(session: Session, subscription_id: str) -> list[Alert]:
    """The alerts set on one subscription, oldest first."""
    query = select(Alert).where(Alert.subscription_id == subscription_id)
    return list(session.scalars(query.order_by(Alert.created_at, Alert.id)))


def customer_alerts(session: Session, customer_id: str) -> list[Alert]:
    """The alerts set on a customer across its subscriptions, oldest first."""
    query = select(Alert).where(Alert.customer_id == customer_id, Alert.subscription_id.is_(None))
    return list(session.scalars(query.order_by(Alert.created_at, Alert.id)))


def watching(
    session: Session, *, subscription_ids: Iterable[str], customer_ids: Iterable[str]
) -> list[Alert]:
    """The alerts on these subscriptions, and the customer-wide ones of these customers."""
    subscriptions, customers = set(subscription_ids), set(customer_ids)
    if not subscriptions and not customers:
        return []
    query = select(Alert).where(
        Alert.subscription_id.in_(subscriptions)
        | (Alert.subscription_id.is_(None) & Alert.customer_id.in_(customers))
    )
    return list(session.scalars(query.order_by(Alert.id)))


def capped(session: Session, subscription_ids: Iterable[str]) -> list[Alert]:
    """The usage alerts with a hard cap on these subscriptions."""
    ids = set(subscription_ids)
    if not ids:
        return []
    query = select(Alert).where(Alert.subscription_id.in_(ids), Alert.hard_cap.is_not(None))
    return list(session.scalars(query.order_by(Alert.id)))


def lock_caps(session: Session, subscription_id: str) -> None:
    """Hold the subscription's cap until commit: batches under a cap count one at a time.

    A transaction-level advisory lock (PostgreSQL), taken only by batches with a capped
    metric: without it two batches could each see the total below the cap and both
    pass it. SQLite runs one writer at a time already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"cap:{subscription_id}"}
        )


def customer_subscriptions(session: Session, customer_id: str) -> list[Subscription]:
    """The customer's subscriptions that are not canceled, oldest first."""
    query = select(Subscription).where(
        Subscription.customer_id == customer_id, Subscription.status != "canceled"
    )
    return list(session.scalars(query.order_by(Subscription.created_at, Subscription.id)))


def subscriptions(session: Session, subscription_ids: Iterable[str]) -> list[Subscription]:
    ids = set(subscription_ids)
    if not ids:
        return []
    return list(session.scalars(select(Subscription).where(Subscription.id.in_(ids))))


def latest_usage_at(session: Session, subscription_id: str, start: Any, end: Any) -> Any:
    """The newest usage timestamp of the subscription in ``[start, end)``, or None."""
    return session.scalar(
        select(func.max(UsageEvent.timestamp)).where(
            UsageEvent.subscription_id == subscription_id,
            UsageEvent.timestamp >= start,
            UsageEvent.timestamp < end,
        )
    )


def insert_firing(session: Session, **fields: Any) -> int | None:
    """Record a firing unless its (alert, period start, threshold) is recorded already.

    Returns the new row's id, or None when it existed: ``ON CONFLICT DO NOTHING`` on the
    unique triple, so a racing request or a replayed batch inserts nothing.
    """
    table = cast(Table, AlertFiring.__table__)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {"details": {}, **fields}
    values.setdefault("fired_at", func.now())
    statement = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["alert_id", "period_start", "threshold"])
        .returning(table.c.id)
    )
    return cast(int | None, session.execute(statement).scalar())


def firings(
    session: Session, alert_id: str, *, period_start: Any = None, limit: int = 100
) -> list[AlertFiring]:
    """The alert's firings, newest first (only the period starting at ``period_start``)."""
    query = select(AlertFiring).where(AlertFiring.alert_id == alert_id)
    if period_start is not None:
        query = query.where(AlertFiring.period_start == period_start)
    return list(session.scalars(query.order_by(AlertFiring.id.desc()).limit(limit)))


def unsent_firings(
    session: Session,
    subscription_ids: Iterable[str],
    *,
    key_prefix: str,
    silent_prefix: str,
    limit: int = 100,
) -> list[AlertFiring]:
    """These subscriptions' firings whose email (business key ``key_prefix`` + the
    firing's id) is not sent yet, oldest first: one query, however many were sent.
    Firings whose threshold starts with ``silent_prefix`` send none."""
    ids = set(subscription_ids)
    if not ids:
        return []
    key = literal(key_prefix) + sql_cast(AlertFiring.id, String)
    sent = select(EmailMessage.id).where(
        EmailMessage.business_key == key, EmailMessage.status == "sent"
    )
    query = (
        select(AlertFiring)
        .where(AlertFiring.subscription_id.in_(ids), ~sent.exists())
        .where(~AlertFiring.threshold.startswith(silent_prefix))
        .order_by(AlertFiring.id)
        .limit(limit)
    )
    return list(session.scalars(query))
