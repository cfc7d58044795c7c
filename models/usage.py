"""The SQL of usage events: store each event once, add a period's events up.

Aggregation runs in the database, on the integer ``value`` column (the property
scaled by ``VALUE_SCALE``), so a period of millions of events is one indexed query
and sums are exact on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.tables import (
    BillableMetric,
    Price,
    Subscription,
    SubscriptionItem,
    UsageEvent,
    utcnow,
)

VALUE_DECIMALS = 6  # usage values keep up to six decimals
VALUE_SCALE = 10**VALUE_DECIMALS


def metrics_by_code(session: Session, codes: set[str]) -> dict[str, BillableMetric]:
    rows = session.scalars(select(BillableMetric).where(BillableMetric.code.in_(codes)))
    return {row.code: row for row in rows}


def metered_subscriptions(
    session: Session, *, customer_ids: set[str], subscription_ids: set[str]
) -> list[tuple[Subscription, str]]:
    """(subscription, metric id) for every metered price the given subscriptions hold.

    The rows are locked ``FOR SHARE`` (PostgreSQL): ingestion batches run side by
    side, but an invoice that closes a period (``FOR UPDATE``) waits for them, so an
    event is either in the period's total or refused as late -- never lost between.
    """
    query = (
        select(Subscription, Price.metric_id)
        .join(SubscriptionItem, SubscriptionItem.subscription_id == Subscription.id)
        .join(Price, Price.id == SubscriptionItem.price_id)
        .where(Price.metric_id.is_not(None), Subscription.status != "canceled")
        .where(Subscription.customer_id.in_(customer_ids) | Subscription.id.in_(subscription_ids))
        .with_for_update(read=True, of=Subscription)
    )
    return [(row[0], str(row[1])) for row in session.execute(query)]


def lock_subscription(session: Session, subscription_id: str) -> Subscription:
    """The subscription row, locked until commit: its period closes one writer at a time."""
    row = session.scalars(
        select(Subscription).where(Subscription.id == subscription_id).with_for_update()
    ).one()
    return row


def insert_once(session: Session, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert the events not stored yet; returns the (customer id, event id) inserted.

    ``ON CONFLICT DO NOTHING`` on the unique (customer, event id) pair: a replayed
    event, even one racing its first delivery in another request, is stored once.
    """
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, UsageEvent.__table__)
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["customer_id", "event_id"])
        .returning(table.c.customer_id, table.c.event_id)
    )
    # One statement compiled once (and cached) for the whole batch: SQLAlchemy sends
    # the rows as multi-row VALUES ("insertmanyvalues") and collects every RETURNING row.
    defaults = {"received_at": utcnow()}
    params = [defaults | row for row in rows]
    return {(row[0], row[1]) for row in session.connection().execute(statement, params)}


def _codepoint_order(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return UsageEvent.event_id.collate("C")
    return UsageEvent.event_id  # SQLite compares text byte by byte: code-point order


def aggregate(
    session: Session,
    *,
    subscription_id: str,
    metric: BillableMetric,
    start: datetime,
    end: datetime,
) -> Decimal:
    """The metric's value over the events with ``start <= timestamp < end``."""
    in_period = (
        UsageEvent.subscription_id == subscription_id,
        UsageEvent.metric_id == metric.id,
        UsageEvent.timestamp >= start,
        UsageEvent.timestamp < end,
    )
    if metric.aggregation == "count":
        return Decimal(session.scalar(select(func.count()).where(*in_period)) or 0)
    if metric.aggregation == "unique_count":
        distinct = select(func.count(func.distinct(UsageEvent.group_key))).where(*in_period)
        return Decimal(session.scalar(distinct) or 0)
    if metric.aggregation == "sum":
        scaled = session.scalar(select(func.sum(UsageEvent.value)).where(*in_period))
    elif metric.aggregation == "max":
        scaled = session.scalar(select(func.max(UsageEvent.value)).where(*in_period))
    elif metric.aggregation == "latest":
        scaled = session.scalar(
            select(UsageEvent.value)
            .where(*in_period)
            # Ties go to the greatest event id in code-point order, as in
            # billing.metering; PostgreSQL's default collation would sort otherwise.
            .order_by(UsageEvent.timestamp.desc(), _codepoint_order(session).desc())
            .limit(1)
        )
    else:
        raise ValueError(f"unknown aggregation {metric.aggregation!r}")
    return Decimal(int(scaled or 0)).scaleb(-VALUE_DECIMALS)
