"""The SQL of usage events: store each event once, add a period's events up.

Aggregation runs in the database, on the integer ``value`` column (the property
scaled by ``VALUE_SCALE``), so a period of millions of events is one indexed query
and sums are exact on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import sqlite
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


class HeldPeriod(NamedTuple):
    """A subscription's open period, for one metric it has a metered price on."""

    subscription_id: str
    customer_id: str
    start: datetime | None
    end: datetime | None
    metric_id: str


def metered_periods(
    session: Session, *, customer_ids: set[str], subscription_ids: set[str]
) -> list[HeldPeriod]:
    """The open period of the given subscriptions, per metric they have a metered price on.

    The subscription rows are locked ``FOR SHARE`` (PostgreSQL): ingestion batches run
    side by side, but an invoice that closes a period (``FOR UPDATE``) waits for them,
    so an event is either in the period's total or refused as late -- never lost
    between. Plain columns, not ORM objects: a batch reads them once per event.
    """
    query = (
        select(
            Subscription.id,
            Subscription.customer_id,
            Subscription.current_period_start,
            Subscription.current_period_end,
            Price.metric_id,
        )
        .join(SubscriptionItem, SubscriptionItem.subscription_id == Subscription.id)
        .join(Price, Price.id == SubscriptionItem.price_id)
        .where(Price.metric_id.is_not(None), Subscription.status != "canceled")
        .where(Subscription.customer_id.in_(customer_ids) | Subscription.id.in_(subscription_ids))
        .with_for_update(read=True, of=Subscription)
    )
    return [
        HeldPeriod(row[0], row[1], row[2], row[3], str(row[4])) for row in session.execute(query)
    ]


def lock_subscription(session: Session, subscription_id: str) -> Subscription:
    """The subscription row, locked until commit: its period closes one writer at a time."""
    row = session.scalars(
        select(Subscription).where(Subscription.id == subscription_id).with_for_update()
    ).one()
    return row


def stored_event_ids(session: Session, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (customer id, event id) pairs are stored already.

    Asked before a capped batch is counted: a replayed event is a duplicate, never a
    refusal for passing the cap it was already counted under.
    """
    if not pairs:
        return set()
    customers = {customer for customer, _ in pairs}
    events = {event for _, event in pairs}
    query = select(UsageEvent.customer_id, UsageEvent.event_id).where(
        UsageEvent.customer_id.in_(customers), UsageEvent.event_id.in_(events)
    )
    return {(row[0], row[1]) for row in session.execute(query)} & pairs


def insert_once(session: Session, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert the events not stored yet; returns the (customer id, event id) inserted.

    ``ON CONFLICT DO NOTHING`` on the unique (customer, event id) pair: a replayed
    event, even one racing its first delivery in another request, is stored once.
    """
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        return _insert_once_postgresql(session, rows)
    table = cast(Table, UsageEvent.__table__)
    statement = (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=["customer_id", "event_id"])
        .returning(table.c.customer_id, table.c.event_id)
    )
    defaults = {"received_at": utcnow()}
    params = [defaults | row for row in rows]
    return {(row[0], row[1]) for row in session.connection().execute(statement, params)}


# The batch goes to PostgreSQL by ``COPY`` into a temporary table (one per connection,
# emptied at every commit), then one short ``INSERT ... SELECT`` moves it: the same two
# statements whatever the batch size, parsed and planned once per connection, instead of
# a multi-row VALUES of 8,000 parameters the driver had to split and bind every time.
_BATCH_TABLE = "usage_event_batch"
_COLUMNS = (
    "event_id, customer_id, subscription_id, metric_id, timestamp, properties, value, group_key"
)
_CREATE_BATCH_TABLE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} (event_id text, customer_id text,"
    " subscription_id text, metric_id text, timestamp timestamptz, properties json,"
    " value bigint, group_key text) ON COMMIT DELETE ROWS"
)
_COPY_BATCH = f"COPY {_BATCH_TABLE} ({_COLUMNS}) FROM STDIN"
_INSERT_BATCH = (
    f"INSERT INTO usage_events ({_COLUMNS}, received_at)"
    f" SELECT {_COLUMNS}, %s FROM {_BATCH_TABLE}"
    " ON CONFLICT (customer_id, event_id) DO NOTHING"
    " RETURNING customer_id, event_id"
)


def _insert_once_postgresql(
    session: Session, rows: Sequence[dict[str, Any]]
) -> set[tuple[str, str]]:
    # The driver's own connection, inside the session's transaction (and its FOR SHARE).
    connection = session.connection().connection.driver_connection
    assert connection is not None
    dumps = json.dumps  # what SQLAlchemy's JSON type would send: the same stored text
    with connection.cursor() as cursor:
        # Emptied by a commit, and gone with a rollback of the transaction creating it:
        # hence "if not exists" each time rather than once per connection.
        cursor.execute(_CREATE_BATCH_TABLE)
        with cursor.copy(_COPY_BATCH) as copy:
            write = copy.write_row
            for row in rows:
                write(
                    (
                        row["event_id"],
                        row["customer_id"],
                        row["subscription_id"],
                        row["metric_id"],
                        _utc(row["timestamp"]),
                        dumps(row["properties"]) if row["properties"] else "{}",
                        row["value"],
                        row["group_key"],
                    )
                )
        cursor.execute(_INSERT_BATCH, (utcnow(),))
        # A second call in the same transaction would find this batch still there: its
        # rows are stored by then, so they conflict and come back from neither call.
        return {(row[0], row[1]) for row in cursor.fetchall()}


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")  # as UTCDateTime says
    return value.astimezone(UTC)


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
