"""The billing activities against both databases kakin runs on: PostgreSQL and SQLite.

Each test runs twice (the ``database_url`` fixture). Activities are called the way
Temporal calls them, retried included, through ``ActivityEnvironment``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.bundle import Activities
from kakin.adapters.stripe_gateway import StripeGateway
from models.db import make_engine, make_session_factory
from models.payloads import (
    ChargeOutcome,
    ChargeRequest,
    CreateInvoiceRequest,
    EmailRequest,
    FinalizeInvoiceRequest,
    SubscriptionChange,
    SubscriptionStatus,
)
from models.repositories import invoices as invoice_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import new_id
from models.tables import AuditLog, Invoice, InvoiceNumberSequence, PaymentAttempt, Subscription
from tests.conftest import make_activities
from tests.helpers import customer_and_price, outbox_files

START = datetime(2027, 1, 31, 0, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


def new_subscription(
    sessions: sessionmaker[Session], stripe: StripeGateway, *, card: str | None = None
) -> str:
    customer_id, price_id = customer_and_price(sessions, stripe, **({"card": card} if card else {}))
    subscription_id = new_id("sub")
    with sessions() as session:
        session.add(
            Subscription(
                id=subscription_id,
                customer_id=customer_id,
                price_id=price_id,
                status=SubscriptionStatus.ACTIVE,
                workflow_id=f"subscription-{subscription_id}",
            )
        )
        session.commit()
    return subscription_id


def invoice_request(subscription_id: str, index: int) -> CreateInvoiceRequest:
    return CreateInvoiceRequest(
        subscription_id=subscription_id,
        period_index=index,
        period_start=START + timedelta(days=31 * index),
        period_end=START + timedelta(days=31 * (index + 1)),
        issued_at=START + timedelta(days=31 * index),
    )


def test_every_activity_takes_effect_once_however_often_it_runs(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, tmp_path: Path
) -> None:
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    env = ActivityEnvironment()
    subscription_id = new_subscription(sessions, stripe_gateway)

    first = env.run(billing.invoicing.create_invoice, invoice_request(subscription_id, 0))
    again = env.run(billing.invoicing.create_invoice, invoice_request(subscription_id, 0))
    assert again.invoice_id == first.invoice_id
    numbered = env.run(
        billing.invoicing.finalize_invoice, FinalizeInvoiceRequest(first.invoice_id, START)
    )
    renumbered = env.run(
        billing.invoicing.finalize_invoice, FinalizeInvoiceRequest(first.invoice_id, START)
    )
    assert numbered.number is not None and renumbered.number == numbered.number
    charge = ChargeRequest(invoice_id=first.invoice_id, attempt=1, attempted_at=START)
    paid = env.run(billing.payments.charge_invoice, charge)
    repaid = env.run(billing.payments.charge_invoice, charge)
    assert paid.outcome == repaid.outcome == ChargeOutcome.SUCCEEDED
    assert repaid.payment_intent_id == paid.payment_intent_id
    email = EmailRequest(
        kind="receipt",
        business_key=f"email:receipt:{first.invoice_id}",
        subscription_id=subscription_id,
        invoice_id=first.invoice_id,
        occurred_at=START,
    )
    env.run(billing.notifications.send_email, email)
    env.run(billing.notifications.send_email, email)
    change = SubscriptionChange(
        subscription_id=subscription_id,
        status=SubscriptionStatus.PAST_DUE,
        occurred_at=START,
        reason="test",
    )
    env.run(billing.invoicing.record_subscription_change, change)
    env.run(billing.invoicing.record_subscription_change, change)

    with sessions() as session:
        invoice = invoice_sql.invoice(session, first.invoice_id)
        assert (invoice.status, invoice.amount_paid, invoice.paid_at) == ("paid", 3000, START)
        assert invoice.period_start == START and invoice.period_start.tzinfo is not None
        attempts = session.scalars(select(PaymentAttempt)).all()
        assert [(a.status, a.invoice_id) for a in attempts if a.invoice_id == invoice.id] == [
            ("succeeded", invoice.id)
        ]
        status_changes = session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.entity_id == subscription_id, AuditLog.to_status == "past_due")
        )
        assert status_changes == 1
        assert subscription_sql.subscription(session, subscription_id).status == "past_due"
    assert len(outbox_files(tmp_path / "outbox")) == 1
    assert stripe_gateway.retrieve_intent(paid.payment_intent_id or "").status == "succeeded"


def test_invoice_numbers_stay_gapless_when_finalized_concurrently(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, tmp_path: Path
) -> None:
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    subscription_id = new_subscription(sessions, stripe_gateway)
    env = ActivityEnvironment()
    drafts = [
        env.run(billing.invoicing.create_invoice, invoice_request(subscription_id, i))
        for i in range(24)
    ]

    def finalize(invoice_id: str) -> str | None:
        ref = ActivityEnvironment().run(
            billing.invoicing.finalize_invoice, FinalizeInvoiceRequest(invoice_id, START)
        )
        return ref.number

    with ThreadPoolExecutor(max_workers=8) as pool:
        # Every invoice twice, as if each activity had been retried.
        numbers = list(pool.map(finalize, [d.invoice_id for d in drafts] * 2))

    mine = sorted({int(n.removeprefix("INV-")) for n in numbers if n})
    assert len(mine) == 24, "an invoice got two numbers, or two invoices one"
    assert mine == list(range(mine[0], mine[0] + 24)), f"gap in {mine}"
    with sessions() as session:
        # The series continues right after the highest number taken: none skipped or reused.
        highest = max(
            int(n.removeprefix("INV-")) for n in session.scalars(select(Invoice.number)) if n
        )
        following = session.get_one(InvoiceNumberSequence, "invoice").next_value
        assert following == highest + 1


def test_a_customer_without_a_card_is_declined_not_retried_forever(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, tmp_path: Path
) -> None:
    billing: Activities = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    subscription_id = new_subscription(sessions, stripe_gateway)
    with sessions() as session:
        subscription_sql.subscription(
            session, subscription_id
        ).customer.stripe_payment_method_id = None
        session.commit()
    env = ActivityEnvironment()
    invoice = env.run(billing.invoicing.create_invoice, invoice_request(subscription_id, 0))
    env.run(billing.invoicing.finalize_invoice, FinalizeInvoiceRequest(invoice.invoice_id, START))
    result = env.run(
        billing.payments.charge_invoice,
        ChargeRequest(invoice_id=invoice.invoice_id, attempt=1, attempted_at=START),
    )
    assert (result.outcome, result.decline_code) == (ChargeOutcome.DECLINED, "no_payment_method")


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.add(
            AuditLog(
                entity_type="test", entity_id="x", action="x", actor="x",
                occurred_at=datetime(2027, 1, 1),  # noqa: DTZ001 -- the point of the test
            )
        )  # fmt: skip
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()
