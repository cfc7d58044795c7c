"""What each kind of alert watches, on stored subscriptions (no workflow needed): the
forecast runs usage on to the period's end, a recurring step fires past the last
threshold, a customer's alert adds up its subscriptions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import EntryKind
from kakin.services import alerts
from kakin.services.usage import UsageEventIn, ingest
from models.db import make_engine, make_session_factory
from models.repositories import ledger as ledger_sql
from tests.usage.test_usage_ingestion import at, metered_subscription

# metered_subscription: a 1,000円 plan and 2円 per GB, in the period Nov 1 to Dec 1.


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    """PostgreSQL and SQLite: the firings' insert-or-nothing is written for both."""
    return make_session_factory(make_engine(database_url))


def send(sessions: sessionmaker[Session], subscription_id: str, code: str, tag: str,
         gb: int, day: float) -> None:  # fmt: skip
    [result] = ingest(sessions, [UsageEventIn(
        event_id=tag, metric=code, timestamp=at(day), properties={"gb": gb},
        subscription_id=subscription_id)])  # fmt: skip
    assert result.status == "accepted", result.reason


def thresholds_fired(sessions: sessionmaker[Session], alert_id: str) -> list[str]:
    with sessions() as session:
        return [
            e.details["threshold"]
            for e in ledger_sql.entries(session, kinds=[EntryKind.ALERT_TRIGGERED])
            if e.details["alert_id"] == alert_id
        ]


def test_the_forecast_runs_the_usage_so_far_on_to_the_period_end(
    sessions: sessionmaker[Session],
) -> None:
    _, subscription_id, code = metered_subscription(sessions)
    spec = alerts.AlertSpec(watches="forecast", budget=Decimal(3000),
                            thresholds=(alerts.Threshold(percent=Decimal(100)),))  # fmt: skip
    alert = alerts.create_alert(sessions, spec, subscription_id=subscription_id, actor="t")
    # 300 GB in the first 10 days of 30: on course for 900 GB, 1,800円 + the plan.
    send(sessions, subscription_id, code, "f1", 300, 10)
    shown = alerts.get_alert(sessions, alert.id)
    assert shown.current == "2800" and shown.fired == []
    send(sessions, subscription_id, code, "f2", 50, 10)  # 350 in 10 days: 3,100円
    assert alerts.get_alert(sessions, alert.id).current == "3100"
    assert thresholds_fired(sessions, alert.id) == ["3000"]


def test_a_recurring_step_fires_past_the_last_threshold(sessions: sessionmaker[Session]) -> None:
    _, subscription_id, code = metered_subscription(sessions)
    spec = alerts.AlertSpec(watches="usage", metric=code,
                            thresholds=(alerts.Threshold(value=Decimal(100)),),
                            recurring=alerts.Threshold(value=Decimal(50)))  # fmt: skip
    alert = alerts.create_alert(sessions, spec, subscription_id=subscription_id, actor="t")
    send(sessions, subscription_id, code, "r1", 120, 1)
    assert alerts.get_alert(sessions, alert.id).next_threshold == "150"
    send(sessions, subscription_id, code, "r2", 90, 2)  # 210: 150 and 200
    assert thresholds_fired(sessions, alert.id) == ["100", "150", "200"]
    assert alerts.get_alert(sessions, alert.id).next_threshold == "250"


def test_a_customer_alert_adds_up_its_subscriptions(sessions: sessionmaker[Session]) -> None:
    customer_id, subscription_id, code = metered_subscription(sessions)
    spec = alerts.AlertSpec(watches="bill", budget=Decimal(2000),
                            thresholds=(alerts.Threshold(percent=Decimal(75)),))  # fmt: skip
    alert = alerts.create_alert(sessions, spec, customer_id=customer_id, actor="t")
    assert (alert.currency, alert.current) == ("JPY", "1000")
    send(sessions, subscription_id, code, "c1", 300, 1)  # 1,600円: 80 % of 2,000円
    assert thresholds_fired(sessions, alert.id) == ["1500"]
    [listed] = alerts.list_alerts(sessions, customer_id=customer_id)
    assert listed.fired == ["1500"] and listed.subscription_id is None


def test_a_count_cap_refuses_the_event_past_it_in_one_batch(
    sessions: sessionmaker[Session],
) -> None:
    _, subscription_id, code = metered_subscription(sessions, aggregation="count", prop=None)
    spec = alerts.AlertSpec(watches="usage", metric=code, hard_cap=Decimal(3),
                            thresholds=(alerts.Threshold(value=Decimal(3)),))  # fmt: skip
    alerts.create_alert(sessions, spec, subscription_id=subscription_id, actor="t")
    batch = [UsageEventIn(event_id=f"n{n}", metric=code, timestamp=at(1),
                          subscription_id=subscription_id) for n in range(5)]  # fmt: skip
    statuses = [r.status for r in ingest(sessions, [batch[0], batch[0], *batch[1:]])]
    assert statuses == ["accepted", "duplicate", "accepted", "accepted", "rejected", "rejected"]
