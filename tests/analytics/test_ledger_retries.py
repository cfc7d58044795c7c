"""A retried activity writes no second ledger row, and the writer's clock is Temporal's.

Activities run the way Temporal runs them, retries included (``ActivityEnvironment``),
on both databases kakin runs on.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, ledger
from models.db import make_engine, make_session_factory
from models.payloads import (
    ChargeOutcome,
    ChargeRequest,
    CreateInvoiceRequest,
    InvoiceChange,
    InvoiceStatus,
    PlanChange,
    SubscriptionChange,
    SubscriptionStatus,
)
from models.repositories.common import new_id
from models.tables import Subscription
from tests.analytics.ledger_rows import entries_of, keys_of, mrr_path
from tests.conftest import make_activities
from tests.helpers import DECLINED_CARD, customer_and_price

START = datetime(2027, 1, 31, 0, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


def started(sessions: sessionmaker[Session], stripe: StripeGateway) -> tuple[str, str]:
    """A subscription recorded as starting it does (its row and its start, together)."""
    customer_id, price_id = customer_and_price(sessions, stripe, card=DECLINED_CARD)
    subscription_id = new_id("sub")
    with sessions() as session:
        subscription = Subscription(
            id=subscription_id, customer_id=customer_id, price_id=price_id,
            status=SubscriptionStatus.ACTIVE, workflow_id=f"subscription-{subscription_id}",
        )  # fmt: skip
        session.add(subscription)
        price = catalog.find_price(session, price_id)
        ledger.record_started(session, subscription, price, start_at=START)
        session.commit()
    return subscription_id, price_id


def twice(env: ActivityEnvironment, method: object, argument: object) -> None:
    env.run(method, argument)  # type: ignore[arg-type]
    env.run(method, argument)  # type: ignore[arg-type]


def test_every_activity_writes_its_entry_once_however_often_it_runs(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, tmp_path: Path
) -> None:
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    env = ActivityEnvironment()
    subscription_id, _ = started(sessions, stripe_gateway)
    pro = catalog.create_price(
        sessions, product_name="Max", currency="JPY", unit_amount=5000, interval="month"
    )

    issue = CreateInvoiceRequest(
        subscription_id=subscription_id, period_index=0, period_start=START,
        period_end=START + timedelta(days=28), issued_at=START,
    )  # fmt: skip
    ref = env.run(billing.invoicing.issue_invoice, issue)
    env.run(billing.invoicing.issue_invoice, issue)
    charge = ChargeRequest(invoice_id=ref.invoice_id, attempt=1, attempted_at=START)
    assert env.run(billing.payments.charge_invoice, charge).outcome == ChargeOutcome.DECLINED
    env.run(billing.payments.charge_invoice, charge)
    twice(env, billing.invoicing.record_subscription_change, SubscriptionChange(
        subscription_id=subscription_id, status=SubscriptionStatus.PAST_DUE,
        occurred_at=START, reason="payment declined",
    ))  # fmt: skip
    twice(env, billing.invoicing.record_invoice_change, InvoiceChange(
        invoice_id=ref.invoice_id, status=InvoiceStatus.VOID, occurred_at=START,
        actor="support:ken", reason="waived",
    ))  # fmt: skip
    twice(env, billing.invoicing.record_subscription_change, SubscriptionChange(
        subscription_id=subscription_id, status=SubscriptionStatus.ACTIVE,
        occurred_at=START, actor="support:ken", reason="invoice waived",
    ))  # fmt: skip
    twice(env, billing.invoicing.change_plan, PlanChange(
        subscription_id=subscription_id, price_id=pro, period_index=0,
        occurred_at=START + timedelta(days=1), actor="support:ken",
    ))  # fmt: skip

    keys = keys_of(sessions, subscription_id, ref.invoice_id)
    assert [key for key, n in Counter(keys).items() if n > 1] == []
    entries = entries_of(sessions, subscription_id)
    assert [str(e.kind) for e in entries] == [
        "subscription.started",
        "invoice.finalized",
        "payment.failed",
        "subscription.status_changed",
        "invoice.voided",
        "subscription.status_changed",
        "subscription.plan_changed",
    ]
    assert mrr_path(entries)[-1] == ("subscription.plan_changed", 3000, 5000, "active", "active")
    voided = entries[4]
    assert (voided.amount, voided.actor, voided.status_before) == (3000, "support:ken", "open")
    # ActivityEnvironment's clock is at 1970: each entry is recorded at its own time.
    assert all(e.recorded_at == e.occurred_at for e in entries)


def test_an_activity_records_in_temporals_clock(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, tmp_path: Path
) -> None:
    """A change carried to the database late (a retry hours later) is recorded then:
    booked when it was written, so a period that had closed meanwhile stays as it was."""
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    subscription_id, _ = started(sessions, stripe_gateway)
    env = ActivityEnvironment()
    retried_at = START + timedelta(hours=5)
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=retried_at)
    env.run(billing.invoicing.record_subscription_change, SubscriptionChange(
        subscription_id=subscription_id, status=SubscriptionStatus.PAUSED, occurred_at=START,
    ))  # fmt: skip

    paused = entries_of(sessions, subscription_id)[-1]
    assert (paused.kind, paused.occurred_at, paused.recorded_at) == (
        "subscription.paused", START, retried_at,
    )  # fmt: skip
    assert (paused.mrr_before, paused.mrr_after) == (3000, 0)
