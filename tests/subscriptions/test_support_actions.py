"""Support actions on a running subscription: pause, resume, a payment made elsewhere.

Pause and resume are validated updates: a bad request is refused with a reason before
anything is written; a good one answers with the new status once applied.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import payments, subscriptions
from models.payloads import InvoiceStatus
from models.repositories import subscriptions as subscription_sql
from tests.helpers import (
    DECLINED_CARD,
    advance_to,
    observe,
    pay_elsewhere,
    record_histories,
    start_subscription,
    status_of,
)


async def test_pause_stops_billing_and_resume_keeps_the_paid_time(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue
    )
    await advance_to(time_env, start + timedelta(days=10))
    paid_until = (await status_of(time_env, subscription_id)).current_period_end
    assert paid_until is not None

    paused = await subscriptions.pause_subscription(
        time_env.client, subscription_id, reason="customer travelling", requested_by="support:ken"
    )
    assert (paused.status, paused.next_action, paused.next_action_at) == ("paused", "resume", None)
    await advance_to(time_env, start + timedelta(days=70))
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "paused"
    assert len(seen.invoices) == 1, "a paused subscription was invoiced"

    resumed = await subscriptions.resume_subscription(
        time_env.client, subscription_id, requested_by="support:ken"
    )
    assert resumed.status == "active"
    audit = observe(pg_sessions, subscription_id).audit
    paused_at = next(a.occurred_at for a in audit if a.to_status == "paused")
    resumed_at = next(a.occurred_at for a in audit if a.from_status == "paused")
    assert abs(resumed_at - paused_at - timedelta(days=60)) < timedelta(minutes=1)
    # Every paused day comes back: the paid period ends later by exactly the pause.
    assert resumed.current_period_end == paid_until + (resumed_at - paused_at)
    assert resumed.next_action == "renew" and resumed.next_action_at == resumed.current_period_end

    await advance_to(time_env, resumed.current_period_end + timedelta(hours=1))  # type: ignore[operator]
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["paid", "paid"]
    assert seen.invoices[1].period_start == resumed.current_period_end
    changes = [(a.from_status, a.to_status, a.actor, a.reason) for a in seen.audit
               if a.entity_type == "subscription"]  # fmt: skip
    assert changes == [
        ("active", "paused", "support:ken", "customer travelling"),
        ("paused", "active", "support:ken", "resumed"),
    ]
    with pg_sessions() as session:
        row = subscription_sql.subscription(session, subscription_id)
        assert row.current_period_end == seen.invoices[1].period_end
    await record_histories(time_env.client, subscription_id, "pause_resume")


async def test_pause_and_resume_are_refused_with_a_reason_and_change_nothing(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await subscriptions.pause_subscription(
            time_env.client, subscription_id, reason="x", requested_by="support:ken"
        )
    assert "only an active or trialing subscription can be paused; it is past_due" in str(
        refused.value.cause
    )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await subscriptions.resume_subscription(time_env.client, subscription_id, requested_by="x")
    assert "only a paused subscription can be resumed" in str(refused.value.cause)

    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "past_due"
    assert not [a for a in seen.audit if a.to_status == "paused"]
    assert (await status_of(time_env, subscription_id)).status == "past_due"


async def test_a_payment_made_elsewhere_returns_the_subscription_to_active(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    outstanding = (await status_of(time_env, subscription_id)).outstanding_invoice
    assert outstanding is not None

    short = await pay_elsewhere(
        stripe_gateway, pg_sessions, subscription_id, outstanding.invoice_id, 1000
    )
    await payments.report_payment(
        time_env.client, subscription_id, invoice_id=outstanding.invoice_id, payment_intent_id=short
    )
    await advance_to(time_env, start + timedelta(days=1, minutes=1))
    assert (await status_of(time_env, subscription_id)).status == "past_due", "underpaid"

    full = await pay_elsewhere(
        stripe_gateway, pg_sessions, subscription_id, outstanding.invoice_id, 3000
    )
    for _ in range(2):  # Stripe delivers webhooks at least once
        await payments.report_payment(
            time_env.client, subscription_id,
            invoice_id=outstanding.invoice_id, payment_intent_id=full,
        )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=1, minutes=2))

    assert (await status_of(time_env, subscription_id)).status == "active"
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["paid"]
    assert [(a.status, a.stripe_payment_intent_id) for a in seen.attempts][-1] == (
        "succeeded", full,
    )  # fmt: skip
    assert seen.email_kinds == ["payment_failed", "receipt"]
    paid = [a for a in seen.audit if a.action == "paid"]
    assert [a.actor for a in paid] == ["stripe-webhook"]
    await record_histories(time_env.client, subscription_id, "payment_received")


async def test_a_grace_period_postpones_the_rest_of_the_ladder(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    before = await status_of(time_env, subscription_id)
    granted = await subscriptions.grant_grace(
        time_env.client, subscription_id, days=10, reason="bank holiday", requested_by="support:ken"
    )
    assert before.next_action_at is not None
    assert (granted.next_action, granted.next_action_at) == (
        "retry_payment", before.next_action_at + timedelta(days=10),
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=20))
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "past_due", "suspended before the grace ran out"
    assert seen.email_kinds == ["payment_failed", "payment_reminder", "payment_reminder"]
    await advance_to(time_env, start + timedelta(days=24, hours=1))
    assert observe(pg_sessions, subscription_id).status == "suspended"  # day 14 + 10
    grace = [a for a in seen.audit if a.action == "grace_granted"]
    assert [(a.actor, a.reason) for a in grace] == [
        ("support:ken", "grace of 10 days: bank holiday")
    ]
    await record_histories(time_env.client, subscription_id, "grace")


async def test_waiving_the_invoice_reactivates_without_a_charge(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=15))
    assert (await status_of(time_env, subscription_id)).status == "suspended"
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await subscriptions.waive_invoice(
            time_env.client, subscription_id, reason=" ", requested_by="x"
        )
    assert "needs a reason" in str(refused.value.cause)

    view = await subscriptions.waive_invoice(
        time_env.client, subscription_id, reason="goodwill after outage", requested_by="support:ken"
    )
    assert (view.status, view.outstanding_invoice) == ("active", None)
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["void"]
    assert all(a.status == "declined" for a in seen.attempts)  # nothing was charged
    assert "receipt" not in seen.email_kinds
    voided = [a for a in seen.audit if a.to_status == "void"]
    assert [(a.actor, a.reason) for a in voided] == [
        ("support:ken", "waived: goodwill after outage")
    ]
    for refuse in (
        subscriptions.waive_invoice(time_env.client, subscription_id, reason="x", requested_by="x"),
        subscriptions.grant_grace(
            time_env.client, subscription_id, days=3, reason="x", requested_by="x"
        ),
    ):
        with pytest.raises(WorkflowUpdateFailedError):
            await refuse
    await record_histories(time_env.client, subscription_id, "waive")


async def test_retry_now_and_writing_off_the_invoice(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    await payments.retry_payment_now(time_env.client, subscription_id, requested_by="support:ken")
    await advance_to(time_env, start + timedelta(days=1, minutes=1))
    seen = observe(pg_sessions, subscription_id)
    assert [a.status for a in seen.attempts] == ["declined", "declined"]  # tried again at once
    assert seen.email_kinds == ["payment_failed", "payment_failed"]

    view = await subscriptions.waive_invoice(
        time_env.client, subscription_id, reason="written off", requested_by="support:ken",
        mark_as=InvoiceStatus.UNCOLLECTIBLE,
    )  # fmt: skip
    assert view.status == "active"
    assert [i.status for i in observe(pg_sessions, subscription_id).invoices] == ["uncollectible"]


async def test_waiving_names_its_invoice_and_never_writes_off_another(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await subscriptions.waive_invoice(
            time_env.client, subscription_id, reason="x", requested_by="x",
            invoice_id="in_some_other_invoice",
        )  # fmt: skip
    assert "is not the one in collection" in str(refused.value.cause)
    assert [i.status for i in observe(pg_sessions, subscription_id).invoices] == ["open"]
