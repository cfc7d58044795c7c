"""Usage events are kept per event, counted once, and only inside an open period."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import metering
from kakin.services.usage import MAX_BATCH, BatchTooLargeError, EventResult, UsageEventIn, ingest
from models.db import make_engine, make_session_factory
from models.repositories import usage as usage_sql
from models.repositories.common import new_id
from models.tables import (
    BillableMetric,
    Customer,
    Price,
    Product,
    Subscription,
    SubscriptionItem,
    UsageEvent,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


def metered_subscription(
    sessions: sessionmaker[Session], *, aggregation: str = "sum", prop: str | None = "gb"
) -> tuple[str, str, str]:
    """(customer id, subscription id, metric code) of a subscription in its Nov period."""
    code = f"storage_{new_id('m')}"
    with sessions() as session:
        customer = Customer(
            id=new_id("cus"), email="ops@example.jp", name="株式会社テスト", currency="JPY"
        )
        product = Product(id=new_id("prod"), name="Storage")
        metric = BillableMetric(
            id=new_id("bm"), code=code, name="Storage", aggregation=aggregation, property=prop
        )
        base = Price(
            id=new_id("price"), product=product, currency="JPY", unit_amount=1000,
            interval="month",
        )  # fmt: skip
        metered = Price(
            id=new_id("price"), product=product, currency="JPY", unit_amount=0,
            interval="month", pricing_model="per_unit", unit_amount_decimal="2", metric=metric,
        )  # fmt: skip
        subscription = Subscription(
            id=new_id("sub"),
            customer=customer,
            price=base,
            status="active",
            workflow_id=new_id("wf"),
            current_period_start=START,
            current_period_end=END,
            items=[SubscriptionItem(id=new_id("si"), price=metered)],
        )
        session.add_all([customer, product, metric, base, metered, subscription])
        session.commit()
        return customer.id, subscription.id, code


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def total(sessions: sessionmaker[Session], subscription_id: str, code: str) -> Decimal:
    with sessions() as session:
        metric = usage_sql.metrics_by_code(session, {code})[code]
        return usage_sql.aggregate(
            session, subscription_id=subscription_id, metric=metric, start=START, end=END
        )


def test_a_batch_keeps_its_good_events_and_says_why_each_bad_one_was_refused(
    sessions: sessionmaker[Session],
) -> None:
    customer_id, subscription_id, code = metered_subscription(sessions)
    batch = [
        UsageEventIn("e1", code, at(1), {"gb": 10}, customer_id=customer_id),
        UsageEventIn("e2", code, at(2), {"gb": "2.5"}, subscription_id=subscription_id),
        UsageEventIn("e3", "no_such_metric", at(2), {"gb": 1}, customer_id=customer_id),
        UsageEventIn("e4", code, at(40), {"gb": 1}, customer_id=customer_id),
        UsageEventIn("e5", code, at(3), {"size": 1}, customer_id=customer_id),
        UsageEventIn("e6", code, at(3), {"gb": -1}, customer_id=customer_id),
        UsageEventIn("e7", code, at(3), {"gb": 1}, customer_id="cus_unknown"),
        UsageEventIn("e8", code, at(3).replace(tzinfo=None), {"gb": 1}, customer_id=customer_id),
        UsageEventIn("e1", code, at(5), {"gb": 99}, customer_id=customer_id),
        UsageEventIn("e9", code, at(4), {"gb": 0.1}, customer_id=customer_id),
    ]

    results = ingest(sessions, batch)

    assert [(r.event_id, r.status) for r in results] == [
        ("e1", "accepted"),
        ("e2", "accepted"),
        ("e3", "rejected"),
        ("e4", "rejected"),
        ("e5", "rejected"),
        ("e6", "rejected"),
        ("e7", "rejected"),
        ("e8", "rejected"),
        ("e1", "duplicate"),
        ("e9", "accepted"),
    ]
    reasons = {r.event_id: r.reason for r in results if r.status == "rejected"}
    assert "unknown metric 'no_such_metric'" in reasons["e3"]
    assert "outside the open period" in reasons["e4"]
    assert "property 'gb' is missing" in reasons["e5"]
    assert "must not be negative" in reasons["e6"]
    assert "no active subscription" in reasons["e7"]
    assert "time zone" in reasons["e8"]
    assert total(sessions, subscription_id, code) == Decimal("12.6")


def test_resending_a_batch_counts_nothing_twice(sessions: sessionmaker[Session]) -> None:
    customer_id, subscription_id, code = metered_subscription(sessions)
    batch = [
        UsageEventIn(f"evt-{n}", code, at(n % 29), {"gb": n}, customer_id=customer_id)
        for n in range(1, 301)
    ]
    first = ingest(sessions, batch)
    again = ingest(sessions, batch)

    assert {r.status for r in first} == {"accepted"}
    assert {r.status for r in again} == {"duplicate"}
    assert total(sessions, subscription_id, code) == sum(range(1, 301))
    with sessions() as session:
        stored = session.scalar(
            select(func.count()).where(UsageEvent.subscription_id == subscription_id)
        )
    assert stored == 300


@pytest.mark.parametrize(
    ("aggregation", "prop", "expected"),
    [
        ("count", None, Decimal(5)),
        ("sum", "gb", Decimal("16.5")),
        ("max", "gb", Decimal(7)),
        ("unique_count", "user", Decimal(3)),
        ("latest", "gb", Decimal("2.5")),
    ],
)
def test_each_aggregation_adds_up_the_period(
    sessions: sessionmaker[Session], aggregation: str, prop: str | None, expected: Decimal
) -> None:
    customer_id, subscription_id, code = metered_subscription(
        sessions, aggregation=aggregation, prop=prop
    )
    rows = [(1, "3", "a"), (2, 7, "b"), (3, "1", "a"), (5, "2.5", "c"), (4, 3, "b")]
    ingest(
        sessions,
        [
            UsageEventIn(f"e{n}", code, at(day), {"gb": gb, "user": user}, customer_id=customer_id)
            for n, (day, gb, user) in enumerate(rows)
        ],
    )
    assert total(sessions, subscription_id, code) == expected


def test_an_oversized_batch_is_refused_whole(sessions: sessionmaker[Session]) -> None:
    customer_id, _, code = metered_subscription(sessions)
    batch = [
        UsageEventIn(f"e{n}", code, at(1), {"gb": 1}, customer_id=customer_id)
        for n in range(MAX_BATCH + 1)
    ]
    with pytest.raises(BatchTooLargeError, match="at most 1000"):
        ingest(sessions, batch)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.text(alphabet="aAbBzZ09_-", min_size=1, max_size=6),  # ids that sort by case
            st.integers(min_value=0, max_value=3),  # few distinct days: timestamp ties
            st.decimals(min_value=0, max_value=1000, places=2),
        ),
        min_size=1,
        max_size=25,
        unique_by=lambda row: row[0],
    ),
    aggregation=st.sampled_from(["count", "sum", "max", "unique_count", "latest"]),
)
def test_the_database_adds_usage_up_as_billing_metering_does(
    sessions: sessionmaker[Session], rows: list[tuple[str, int, Decimal]], aggregation: str
) -> None:
    prop = None if aggregation == "count" else "v"
    customer_id, subscription_id, code = metered_subscription(
        sessions, aggregation=aggregation, prop=prop
    )
    events = [
        UsageEventIn(event_id, code, at(day), {"v": str(value)}, customer_id=customer_id)
        for event_id, day, value in rows
    ]
    assert {r.status for r in ingest(sessions, events)} == {"accepted"}
    reference = metering.aggregate(
        metric=metering.BillableMetric(code=code, aggregation=aggregation, property=prop),  # type: ignore[arg-type]
        events=[metering.UsageEvent(e.event_id, e.timestamp, e.properties) for e in events],
    )
    assert total(sessions, subscription_id, code) == reference.quantity


def test_an_event_in_any_time_zone_is_judged_and_stored_in_utc(
    sessions: sessionmaker[Session],
) -> None:
    customer_id, subscription_id, code = metered_subscription(sessions)
    tokyo = timezone(timedelta(hours=9))
    inside = datetime(2026, 11, 1, 8, 0, tzinfo=tokyo)  # Oct 31 23:00 UTC: before the period
    first = datetime(2026, 11, 1, 9, 0, tzinfo=tokyo)  # Nov 1 00:00 UTC: its first instant
    results = ingest(
        sessions,
        [
            UsageEventIn("early", code, inside, {"gb": 1}, customer_id=customer_id),
            UsageEventIn("first", code, first, {"gb": 2}, customer_id=customer_id),
        ],
    )
    assert [r.status for r in results] == ["rejected", "accepted"]
    assert "2026-11-01T08:00:00+09:00 is outside the open period" in results[0].reason
    with sessions() as session:
        stored = session.scalars(select(UsageEvent).where(UsageEvent.event_id == "first")).one()
    assert stored.timestamp == START and stored.timestamp.utcoffset() == timedelta(0)
    assert total(sessions, subscription_id, code) == 2


def test_a_batch_of_1000_is_stored_whole_and_a_replay_counts_nothing(
    sessions: sessionmaker[Session],
) -> None:
    customer_id, subscription_id, code = metered_subscription(sessions)
    batch = [
        UsageEventIn(f"b{n}", code, at(n / 40), {"gb": f"{n}.000001"}, customer_id=customer_id)
        for n in range(MAX_BATCH)
    ]
    assert {r.status for r in ingest(sessions, batch)} == {"accepted"}
    again = ingest(sessions, batch[::-1])  # the same events, another order
    assert {r.status for r in again} == {"duplicate"}
    assert [r.event_id for r in again] == [e.event_id for e in batch[::-1]]
    expected = sum(Decimal(f"{n}.000001") for n in range(MAX_BATCH))
    assert total(sessions, subscription_id, code) == expected


def test_the_invoice_closing_a_period_makes_ingestion_wait_then_refuse_as_late(
    pg_sessions: sessionmaker[Session],
) -> None:
    """The locking rule: ingestion reads the period FOR SHARE; the invoice that closes it
    holds the row FOR UPDATE, so an event waits and is judged against the next period:
    refused as late, never stored in a period already invoiced."""
    customer_id, subscription_id, code = metered_subscription(pg_sessions)
    results: list[list[EventResult]] = []
    event = UsageEventIn("racing", code, at(20), {"gb": 5}, customer_id=customer_id)
    with pg_sessions() as invoicing:
        subscription = usage_sql.lock_subscription(invoicing, subscription_id)
        worker = threading.Thread(target=lambda: results.append(ingest(pg_sessions, [event])))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), "ingestion did not wait for the invoice's lock"
        subscription.current_period_start = END
        subscription.current_period_end = END + timedelta(days=31)
        invoicing.commit()
    worker.join(timeout=30)
    [[result]] = results
    assert result.status == "rejected" and "outside the open period" in result.reason
    assert total(pg_sessions, subscription_id, code) == 0
